"""Demand, capacity and price forecasts: Prophet beside a seasonal-naive baseline, chosen per
series by rolling-origin backtest, plus capacity-crossing detection for bottleneck prediction."""

from __future__ import annotations

from skyshard.forecast.config import ForecastConfig
from skyshard.forecast.crossing import Crossing, first_crossing, first_crossings
from skyshard.forecast.fingerprint import input_fingerprints, series_to_refit
from skyshard.forecast.run import ForecastResult, forecast_series

__all__ = [
    "Crossing",
    "ForecastConfig",
    "ForecastResult",
    "first_crossing",
    "first_crossings",
    "forecast_series",
    "input_fingerprints",
    "series_to_refit",
]
