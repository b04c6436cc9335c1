"""Demand, capacity and price forecasts: every series is backtested at rolling origins with
cheap robust candidates (vectorized) and, riskiest first within a time budget, with slow
models (statsforecast, Prophet); each series takes the model its backtest favours, checked
out of sample, with conformal bounds clipped to physical limits. Plus capacity-crossing
detection for bottleneck prediction. See docs/forecasting.md.

Entry point: `forecast_series(frame, settings: ForecastPolicy | None, *, limits=...)`."""

from __future__ import annotations

from skyshard.forecast.crossing import Crossing, first_crossing, first_crossings
from skyshard.forecast.fingerprint import input_fingerprints, series_to_refit
from skyshard.forecast.run import forecast_series
from skyshard.forecast.screen import LIMIT_COLUMNS
from skyshard.forecast.series_id import SeriesId, SeriesKind
from skyshard.forecast.tables import ForecastResult

__all__ = [
    "LIMIT_COLUMNS",
    "Crossing",
    "ForecastResult",
    "SeriesId",
    "SeriesKind",
    "first_crossing",
    "first_crossings",
    "forecast_series",
    "input_fingerprints",
    "series_to_refit",
]
