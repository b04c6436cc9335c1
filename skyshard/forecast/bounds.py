"""A point forecast with its bounds, bounds from empirical residual quantiles, and blending."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Band:
    """Point forecast `yhat` with `lower`/`upper` bounds, one value per forecast hour."""

    yhat: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def residual_quantiles(residuals: np.ndarray, interval: float) -> tuple[float, float]:
    """Lower and upper residual quantiles of a central `interval`, widened to include 0 so the
    band always contains the point forecast; (0, 0) when there are no finite residuals."""
    finite = residuals[np.isfinite(residuals)]
    if finite.size == 0:
        return 0.0, 0.0
    tail = (1.0 - interval) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return min(float(low), 0.0), max(float(high), 0.0)


def blend(first: Band, second: Band, weight_first: float) -> Band:
    """Weighted mean of two bands (point forecasts and bounds alike)."""
    w = weight_first
    return Band(
        yhat=w * first.yhat + (1.0 - w) * second.yhat,
        lower=w * first.lower + (1.0 - w) * second.lower,
        upper=w * first.upper + (1.0 - w) * second.upper,
    )
