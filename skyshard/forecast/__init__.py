"""Demand, capacity and price forecasts: every series is backtested at rolling origins with
cheap robust candidates (vectorized) and, riskiest first within a time budget, with slow
models (statsforecast, Prophet); each series takes the model its backtest favours, checked
out of sample, with conformal bounds clipped to physical limits. Plus capacity-crossing
detection for bottleneck prediction. See docs/forecasting.md.

Entry point: `forecast_series(frame, settings: ForecastPolicy | None, *, limits=...)`."""

from __future__ import annotations

from skyshard.lazy import lazy_exports

EXPORTS = {
    "LIMIT_COLUMNS": "screen",
    "SeriesId": "series_id",
    "SeriesKind": "series_id",
    "Crossing": "crossing",
    "ForecastResult": "tables",
    "first_crossing": "crossing",
    "first_crossings": "crossing",
    "forecast_series": "run",
    "group_keys": "groups",
    "input_fingerprints": "fingerprint",
    "series_in_group": "groups",
    "series_to_refit": "fingerprint",
}
__getattr__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)
