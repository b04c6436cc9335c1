"""The seasonal-naive baseline for a whole `SeriesBlock` at once: final forecast, bounds and the
rolling-origin backtest (MAE, MASE, MAPE, coverage per cut-off), with numpy on the (series x
hours) matrix.

It computes exactly what `seasonal_naive`, `run_folds` and `metrics` compute one series at a
time (the per-series path stays for the series Prophet runs on, where the baseline is one
model of three); undefined scores are NaN here where they are None there.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from skyshard.forecast.backtest import rolling_cutoffs
from skyshard.forecast.bounds import Band
from skyshard.forecast.config import ForecastConfig
from skyshard.forecast.seasonal_naive import season_for
from skyshard.forecast.series import SeriesBlock

SCORES = ("mae", "mase", "mape", "coverage", "n_points")


@dataclass(frozen=True)
class BaselineBlock:
    """The baseline of every series in `block`: `band` arrays are (series, horizon), `folds`
    maps each score name of SCORES to a (series, cut-offs) array."""

    block: SeriesBlock
    season: int
    cutoffs: list[int]
    band: Band
    folds: dict[str, np.ndarray]

    def mean_score(self, name: str) -> np.ndarray:
        """Per series, the mean of a score over the cut-offs where it is defined (else NaN)."""
        return _nanmean(self.folds[name], axis=1)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN, as intended
        return np.nanmean(values, axis=axis)


def seasonal_naive_rows(history: np.ndarray, horizon: int, season: int, interval: float) -> Band:
    """`seasonal_naive` for every row of a gap-free (series, hours) matrix."""
    n = history.shape[1]
    steps = np.arange(horizon)
    yhat = history[:, n - season + steps % season]
    diffs = history[:, season:] - history[:, :-season]
    if diffs.shape[1] == 0:
        low = high = np.zeros((history.shape[0], 1))
    else:
        tail = (1.0 - interval) / 2.0
        low, high = np.quantile(diffs, [tail, 1.0 - tail], axis=1)[:, :, None]
        low, high = np.minimum(low, 0.0), np.maximum(high, 0.0)
    widen = np.sqrt(steps // season + 1)
    return Band(yhat=yhat, lower=yhat + low * widen, upper=yhat + high * widen)


def mase_scale_rows(train: np.ndarray, season: int) -> np.ndarray:
    """`mase_scale` per row; NaN where it is None."""
    if train.shape[1] <= season:
        return np.full(train.shape[0], np.nan)
    diffs = np.abs(train[:, season:] - train[:, :-season])
    scale = _nanmean(diffs, axis=1)
    return np.where(scale > 0.0, scale, np.nan)


def fold_scores(actual: np.ndarray, band: Band, scale: np.ndarray) -> dict[str, np.ndarray]:
    """Every score of one cut-off per row (NaN where undefined, as `metrics` gives None)."""
    known = np.isfinite(actual)
    n_points = known.sum(axis=1)
    error = _nanmean(np.abs(actual - band.yhat), axis=1)
    nonzero = known & (actual != 0.0)
    relative = np.abs((actual - band.yhat) / np.where(nonzero, actual, 1.0))
    mape = 100.0 * _nanmean(np.where(nonzero, relative, np.nan), axis=1)
    inside = (actual >= band.lower) & (actual <= band.upper)
    coverage = np.where(n_points > 0, inside.sum(axis=1) / np.maximum(n_points, 1), np.nan)
    return {
        "mae": error,
        "mase": error / scale,
        "mape": mape,
        "coverage": coverage,
        "n_points": n_points,
    }


def baseline_block(block: SeriesBlock, config: ForecastConfig) -> BaselineBlock:
    """Forecast and backtest the seasonal-naive baseline for every series of a non-empty block."""
    n, horizon, interval = block.n_hours, config.horizon_h, config.interval
    if n == 0:
        raise ValueError("baseline_block needs series with at least one observed hour")
    season = season_for(n)
    filled = block.filled
    cutoffs = rolling_cutoffs(n, horizon, config.cutoffs, min_train=2 * season)
    per_fold = []
    for c in cutoffs:
        band = seasonal_naive_rows(filled[:, :c], horizon, season, interval)
        actual = block.observed[:, c : c + horizon]
        per_fold.append(fold_scores(actual, band, mase_scale_rows(block.observed[:, :c], season)))
    rows = len(block.series_ids)
    folds = {
        name: np.stack([f[name] for f in per_fold], axis=1)
        if per_fold
        else np.empty((rows, 0), dtype=np.int64 if name == "n_points" else float)
        for name in SCORES
    }
    return BaselineBlock(
        block=block,
        season=season,
        cutoffs=cutoffs,
        band=seasonal_naive_rows(filled, horizon, season, interval),
        folds=folds,
    )
