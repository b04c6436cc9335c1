"""Per-series model choice by backtest, validated out of sample, and conformal intervals.

- **Choice**: the mean of the `TOP` models with the lowest recency-weighted mean scaled error
  (MAE over `robust_scale`, i.e. MASE where it is defined) over the chosen origins; a model
  must have run at every origin where the baseline was scored; ties go to the earlier model
  (the baseline first). Averaging a few good models is steadier out of sample than the
  single best on a handful of origins.
- **Out of sample**: the same rule on the earlier origins only, scored on the later ones
  (`split_origins`), so the reported gain over the baseline is not the selection's own
  optimism.
- **Intervals**: split-conformal on normalized backtest residuals ((actual - forecast) /
  scale). For each origin the model is chosen on the *other* origins (leave one origin out),
  so the residuals carry the selection's error too; they are pooled per group of series
  (e.g. every shard's cpu) and give lower and upper quantiles with the finite-sample
  correction. A series' band is its forecast plus those quantiles times its scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypeVar

import numpy as np

from skyshard.forecast.backtest import Backtest, nanmean
from skyshard.forecast.candidates import DAY

T = TypeVar("T")
# A group with fewer residuals than this borrows the pool of every series instead.
MIN_POOL = 200
# A series' forecast is the mean of its TOP best models ...
TOP = 4
# ... ranked by their errors weighted by RECENCY ** (number of later origins): workloads
# drift, and the latest origins tell most about the next horizon.
RECENCY = 0.5


def split_origins(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the selection and held-out origins: the later half is held out (none when
    there is a single origin)."""
    held = np.arange(count) >= count - count // 2
    return ~held, held


def choose(error: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """(rows, TOP): per row, the indices of the `TOP` models with the lowest recency-weighted
    mean `error` (models, rows, origins) over the `origins` mask, best first; a model absent
    at a scored origin is out, and its place goes to the best; the baseline (0) where nothing
    was scored. Ties go to the lower index."""
    valid = np.isfinite(error[0]) & origins[None, :]
    later = np.cumsum(origins[::-1])[::-1] - origins  # masked origins after each one
    weights = np.where(valid, RECENCY ** later[None, :], 0.0)
    absent = (~np.isfinite(error) & valid[None]).any(axis=2)
    total = (np.nan_to_num(error, nan=0.0) * weights[None]).sum(axis=2)
    count = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(absent | (count[None] == 0), np.inf, total / count[None])
    order = np.argsort(mean, axis=0, kind="stable")[:TOP].T
    ranked = np.take_along_axis(mean.T, order, axis=1)
    return np.where(np.isfinite(ranked), order, order[:, :1])


def combine(values: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """The mean of `values` (models, rows, ...) over each row's chosen models (rows, TOP)."""
    rows = np.arange(values.shape[1])[:, None]
    return values[choice, rows].mean(axis=1)


def leave_one_out_choice(error: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """(rows, origins, TOP): for each origin, the models chosen on the other origins of the
    mask."""
    others = [origins & (np.arange(len(origins)) != j) for j in range(len(origins))]
    choices = [choose(error, mask) for mask in others]
    if not choices:
        return np.zeros((error.shape[1], 0, TOP), dtype=int)
    return np.stack(choices, axis=1)


def chosen_forecasts(backtest: Backtest, choice: np.ndarray) -> np.ndarray:
    """(rows, origins, horizon): at each origin, the mean forecast of the models `choice`
    (rows, origins, TOP) picks."""
    rows = np.arange(backtest.yhat.shape[1])[:, None, None]
    columns = np.arange(len(backtest.cutoffs))[None, :, None]
    return backtest.yhat[choice, rows, columns].mean(axis=2)


def normalized_residuals(backtest: Backtest, choice: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """(rows, origins, horizon) of (actual - forecast) / norm for the model `choice` (rows,
    origins) picks; NaN outside the `origins` mask."""
    residuals = (backtest.actual - chosen_forecasts(backtest, choice)) / backtest.norm[:, :, None]
    return np.where(origins[None, :, None], residuals, np.nan)


def conformal_quantiles(residuals: np.ndarray, interval: float) -> tuple[float, float] | None:
    """Lower and upper quantiles of a central `interval` from pooled residuals, with the
    split-conformal finite-sample correction; None without residuals."""
    values = np.sort(residuals[np.isfinite(residuals)])
    n = values.size
    if n == 0:
        return None
    tail = (1.0 - interval) / 2.0
    high = min(n, math.ceil((n + 1) * (1.0 - tail))) - 1
    low = max(0, math.floor((n + 1) * tail) - 1)
    return min(float(values[low]), 0.0), max(float(values[high]), 0.0)


def per_group(
    pools: Mapping[str, np.ndarray], statistic: Callable[[np.ndarray], T | None]
) -> dict[str, T]:
    """`statistic` of each group's pooled residuals. A group with fewer than `MIN_POOL`
    takes the pool of every group; a group is absent when that is small too."""
    everything = np.concatenate([*pools.values(), np.empty(0)])
    shared = statistic(everything) if np.isfinite(everything).sum() >= MIN_POOL else None
    found = {}
    for group, pool in pools.items():
        own = statistic(pool) if np.isfinite(pool).sum() >= MIN_POOL else shared
        if own is not None:
            found[group] = own
    return found


def group_quantiles(
    pools: Mapping[str, np.ndarray], interval: float
) -> dict[str, tuple[float, float]]:
    """Conformal quantiles per group (`per_group`); a group without any falls back to its
    series' in-sample quantiles (`in_sample_quantiles`)."""
    return per_group(pools, lambda pool: conformal_quantiles(pool, interval))


def root_mean_square(residuals: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """Root of the mean squared finite residual: the spread about the point forecast, so a
    biased forecast counts its bias too (NaN without any residual)."""
    return np.sqrt(nanmean(np.square(residuals), axis=axis))


def in_sample_quantiles(observed: np.ndarray, norm: np.ndarray, interval: float) -> np.ndarray:
    """(rows, 2): quantiles of each row's normalized in-sample seasonal (24 h, or 1 h for a
    shorter series) differences, the classic seasonal-naive interval; 0 without any pair."""
    lag = DAY if observed.shape[1] > DAY else 1
    diffs = (observed[:, lag:] - observed[:, :-lag]) / norm[:, None]
    tail = (1.0 - interval) / 2.0
    out = np.zeros((observed.shape[0], 2))
    known = np.isfinite(diffs).any(axis=1) if diffs.shape[1] else np.zeros(len(out), dtype=bool)
    if known.any():
        low, high = np.nanquantile(diffs[known], [tail, 1.0 - tail], axis=1)
        out[known] = np.stack([np.minimum(low, 0.0), np.maximum(high, 0.0)], axis=1)
    return out
