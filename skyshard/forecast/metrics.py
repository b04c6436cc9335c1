"""Forecast accuracy metrics; each ignores hours whose actual value is missing (NaN).

MASE follows Hyndman & Koehler (2006): mean absolute error divided by the in-sample MAE of the
seasonal naive forecast on the training data. MAPE is in percent and skips zero actuals.
Each returns None where it is undefined.
"""

from __future__ import annotations

import numpy as np


def mae(actual: np.ndarray, yhat: np.ndarray) -> float | None:
    known = np.isfinite(actual)
    if not known.any():
        return None
    return float(np.mean(np.abs(actual[known] - yhat[known])))


def mase_scale(train: np.ndarray, season: int) -> float | None:
    """In-sample MAE of the seasonal naive forecast; None when zero or without any pair."""
    if len(train) <= season:
        return None
    diffs = np.abs(train[season:] - train[:-season])
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        return None
    scale = float(diffs.mean())
    return scale if scale > 0.0 else None


def mase(actual: np.ndarray, yhat: np.ndarray, scale: float | None) -> float | None:
    error = mae(actual, yhat)
    if error is None or scale is None:
        return None
    return error / scale


def mape(actual: np.ndarray, yhat: np.ndarray) -> float | None:
    usable = np.isfinite(actual) & (actual != 0.0)
    if not usable.any():
        return None
    return float(100.0 * np.mean(np.abs((actual[usable] - yhat[usable]) / actual[usable])))


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float | None:
    """Share of known actuals inside [lower, upper]."""
    known = np.isfinite(actual)
    if not known.any():
        return None
    inside = (actual[known] >= lower[known]) & (actual[known] <= upper[known])
    return float(inside.mean())
