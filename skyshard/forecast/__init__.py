"""Demand, capacity and price forecasts: a vectorized seasonal-naive baseline with its backtest
for every series, Prophet (with the baseline and their blend, chosen per series by rolling-origin
backtest) on the riskiest series within a budget, plus capacity-crossing detection for
bottleneck prediction. See docs/forecasting.md."""

from __future__ import annotations

from skyshard.forecast.config import ForecastConfig
from skyshard.forecast.crossing import Crossing, first_crossing, first_crossings
from skyshard.forecast.fingerprint import input_fingerprints, series_to_refit
from skyshard.forecast.run import forecast_series
from skyshard.forecast.screen import LIMIT_COLUMNS
from skyshard.forecast.tables import ForecastResult

__all__ = [
    "LIMIT_COLUMNS",
    "Crossing",
    "ForecastConfig",
    "ForecastResult",
    "first_crossing",
    "first_crossings",
    "forecast_series",
    "input_fingerprints",
    "series_to_refit",
]
