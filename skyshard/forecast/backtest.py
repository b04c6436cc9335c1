"""Rolling-origin backtest of every candidate for a whole block of series, on one fixed scale.

Origins (cut-offs) sit one horizon apart, the last one a horizon before the end of the series,
each keeping at least `MIN_TRAIN` hours. Models train on the gap-filled series; errors use the
observed hours only. Every error is scaled by the in-sample MAE of the daily (season-24)
seasonal naive forecast on the observed training hours (MASE, Hyndman & Koehler 2006) for
every series, whatever its length, so scores are comparable across series and models.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from skyshard.forecast.candidates import CHEAP, DAY

MIN_TRAIN = 2 * DAY


def rolling_cutoffs(n_hours: int, horizon: int, count: int) -> list[int]:
    """Training lengths of up to `count` origins spaced by `horizon`, oldest first."""
    candidates = (n_hours - k * horizon for k in range(count, 0, -1))
    return [c for c in candidates if c >= MIN_TRAIN]


def nanmean(values: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN, as intended
        return np.nanmean(values, axis=axis)


def nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN, as intended
        return np.nanmedian(values, axis=axis)


def mase_scale(observed: np.ndarray) -> np.ndarray:
    """Per row, the in-sample MAE of the season-24 naive forecast; NaN where it is 0 or has no
    observed pair."""
    if observed.shape[1] <= DAY:
        return np.full(observed.shape[0], np.nan)
    scale = nanmean(np.abs(observed[:, DAY:] - observed[:, :-DAY]), axis=1)
    return np.where(scale > 0.0, scale, np.nan)


def robust_scale(observed: np.ndarray) -> np.ndarray:
    """`mase_scale`, or where undefined the mean absolute level, or 1: the scale that turns a
    series' errors into unit-free numbers for selection and intervals."""
    scale = mase_scale(observed)
    level = nanmean(np.abs(observed), axis=1)
    scale = np.where(np.isfinite(scale), scale, level)
    return np.where(np.isfinite(scale) & (scale > 0.0), scale, 1.0)


@dataclass
class Backtest:
    """Every model at every origin for the rows of a block. `yhat` is (models, rows, origins,
    horizon), NaN where a model did not run; `actual` (rows, origins, horizon) is NaN where an
    hour was not observed; `scale` (rows, origins) is the MASE scale (NaN where undefined),
    `norm` the always-defined scale of `robust_scale`."""

    models: list[str]
    cutoffs: list[int]
    yhat: np.ndarray
    actual: np.ndarray
    scale: np.ndarray
    norm: np.ndarray

    def mae(self) -> np.ndarray:
        """(models, rows, origins) mean absolute error over the observed hours."""
        return nanmean(np.abs(self.actual[None] - self.yhat), axis=3)

    def mase(self) -> np.ndarray:
        return self.mae() / self.scale[None]

    def with_fallback(self) -> Backtest:
        """A copy in which a model that ran for a row at some origins but not at earlier ones
        (too little history there) stands in with the baseline's forecast at those, as the
        forecaster would have forecast then. Selection then compares every model on the
        same origins: without it, a short history's rows could only ever choose the baseline
        (no other candidate runs at its first origins)."""
        ran = np.isfinite(self.yhat).any(axis=(2, 3), keepdims=True)
        yhat = np.where(np.isnan(self.yhat) & ran, self.yhat[:1], self.yhat)
        return Backtest(self.models, self.cutoffs, yhat, self.actual, self.scale, self.norm)

    def add_model(self, name: str, rows: np.ndarray, yhat: np.ndarray) -> None:
        """Add a model that ran on some `rows` only; `yhat` is (len(rows), origins, horizon)."""
        full = np.full((1, *self.yhat.shape[1:]), np.nan)
        full[0, rows] = yhat
        self.models.append(name)
        self.yhat = np.concatenate([self.yhat, full])


def cheap_backtest(
    observed: np.ndarray,
    horizon: int,
    count: int,
    floor: np.ndarray,
    forecasts_at: Callable[[int], dict[str, np.ndarray]],
) -> Backtest:
    """Backtest every cheap candidate on every row at up to `count` origins;
    `forecasts_at(cut)` gives every candidate's forecasts from the first `cut` hours (as the
    final forecast is made); forecasts are clipped at each row's physical `floor`."""
    rows, n = observed.shape
    cutoffs = rolling_cutoffs(n, horizon, count)
    yhat = np.full((len(CHEAP), rows, len(cutoffs), horizon), np.nan)
    actual = np.full((rows, len(cutoffs), horizon), np.nan)
    scale = np.full((rows, len(cutoffs)), np.nan)
    norm = np.ones((rows, len(cutoffs)))
    for o, c in enumerate(cutoffs):
        forecasts = forecasts_at(c)
        for m, name in enumerate(CHEAP):
            yhat[m, :, o] = np.maximum(forecasts[name], floor[:, None])
        actual[:, o] = observed[:, c : c + horizon]
        scale[:, o] = mase_scale(observed[:, :c])
        norm[:, o] = robust_scale(observed[:, :c])
    return Backtest(list(CHEAP), cutoffs, yhat, actual, scale, norm)
