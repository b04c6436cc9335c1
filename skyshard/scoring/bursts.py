"""How often each shard bursts far above its usual use, and by how much, from its history.

A forecast interval describes the body of a shard's use; short bursts (a batch job, a
retry storm, an on/off VM switching on) are rarer than the interval's tail and much larger.
They are what overloads a host that a planner packed tightly for price. A burst hour is one
whose cpu residual (`residuals.recent_residuals`) exceeds its median by more than
`BURST_SIGMAS` robust standard deviations of that shard's residuals (and by at least
`MIN_EXCESS` cores, so a near-idle shard's noise is no burst). Per shard: the share of hours
that burst (`rate`) and their mean excess (`excess`, cores).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl

from skyshard.scoring.residuals import recent_residuals

BURST_SIGMAS = 4.0
MIN_EXCESS = 0.05
MIN_HOURS = 24
# Median absolute deviation to standard deviation, for normal residuals.
_MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class Bursts:
    """(shards,) burst `rate` (share of hours) and mean `excess` (cores) per shard."""

    rate: np.ndarray
    excess: np.ndarray


def shard_bursts(usage: pl.DataFrame, shard_ids: list[str]) -> Bursts:
    """Burst rate and excess of each of `shard_ids` (in that order) from `usage`
    (`shard_id, hour, cpu_avg`); 0 and 0 for a shard with under MIN_HOURS residuals."""
    residual = recent_residuals(usage, shard_ids, "cpu_avg")
    with warnings.catch_warnings():  # a shard without history is all NaN: no burst
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmedian(residual, axis=1, keepdims=True)
        scale = _MAD_TO_SD * np.nanmedian(np.abs(residual - centre), axis=1, keepdims=True)
    threshold = np.maximum(BURST_SIGMAS * scale, MIN_EXCESS)
    with np.errstate(invalid="ignore"):
        burst = residual - centre > threshold
    counted = (~np.isnan(residual)).sum(axis=1)
    bursts = burst.sum(axis=1)
    excess = np.where(burst, residual - centre, 0.0).sum(axis=1)
    enough = counted >= MIN_HOURS
    rate = np.where(enough, bursts / np.maximum(counted, 1), 0.0)
    mean_excess = np.where(enough & (bursts > 0), excess / np.maximum(bursts, 1), 0.0)
    return Bursts(rate, mean_excess)
