"""Seasonal naive forecast: each future hour repeats the same hour one season earlier.

The season is daily (24 h), or weekly (168 h) once the series holds at least three weeks, so
the weekly pattern is seen often enough to trust repeating it; under one day it degrades to
the naive last value. Bounds come from empirical quantiles of the in-sample seasonal
differences, widened by sqrt(k) for hours k seasons ahead (the random-walk rule).
"""

from __future__ import annotations

import numpy as np

from skyshard.forecast.bounds import Band, residual_quantiles

DAILY = 24
WEEKLY = 168


def season_for(n_hours: int) -> int:
    """The season length (hours) used for a series of `n_hours`."""
    if n_hours >= 3 * WEEKLY:
        return WEEKLY
    if n_hours >= DAILY:
        return DAILY
    return 1


def seasonal_naive(history: np.ndarray, horizon: int, season: int, interval: float) -> Band:
    """Forecast `horizon` hours after `history` (gap-free) by repeating its last season."""
    n = len(history)
    if n < season:
        raise ValueError(f"seasonal naive needs at least one season ({season} h), got {n} h")
    steps = np.arange(horizon)
    yhat = history[n - season + steps % season]
    low, high = residual_quantiles(history[season:] - history[:-season], interval)
    widen = np.sqrt(steps // season + 1)
    return Band(yhat=yhat, lower=yhat + low * widen, upper=yhat + high * widen)
