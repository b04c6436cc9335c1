"""Demand, capacity and price forecasts: a vectorized seasonal-naive baseline with its backtest
for every series, Prophet (with the baseline and their blend, chosen per series by rolling-origin
backtest) on the riskiest series within a budget, plus capacity-crossing detection for
bottleneck prediction. See docs/forecasting.md."""

from __future__ import annotations

from skyshard.lazy import lazy_exports

EXPORTS = {
    "LIMIT_COLUMNS": "screen",
    "Crossing": "crossing",
    "ForecastConfig": "config",
    "ForecastResult": "tables",
    "first_crossing": "crossing",
    "first_crossings": "crossing",
    "forecast_series": "run",
    "input_fingerprints": "fingerprint",
    "series_to_refit": "fingerprint",
}
__getattr__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)
