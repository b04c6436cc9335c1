"""Each shard's recent use minus its usual use: the same hour's median on earlier days.

What is left after the daily pattern is what a forecast of that pattern misses: noise,
bursts, the switching of on/off workloads. Measured on the history the planner already
holds, it needs no stored forecast and sees every shard and host alike.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl

RESIDUAL_DAYS = 14
BASELINE_DAYS = 7
CHUNK = 1_000


def _baseline(use: np.ndarray) -> np.ndarray:
    """(shards, hours) median of the same hour on up to BASELINE_DAYS earlier days; NaN in
    the first day, which has none. Computed CHUNK shards at a time (bounded memory)."""
    shards, hours = use.shape
    baseline = np.full((shards, hours), np.nan)
    for start in range(0, shards, CHUNK):
        part = use[start : start + CHUNK]
        earlier = np.full((BASELINE_DAYS, len(part), hours), np.nan)
        for day in range(1, BASELINE_DAYS + 1):
            lag = 24 * day
            if lag < hours:
                earlier[day - 1, :, lag:] = part[:, :-lag]
        with warnings.catch_warnings():  # an hour no earlier day saw stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            baseline[start : start + CHUNK] = np.nanmedian(earlier, axis=0)
    return baseline


def recent_residuals(usage: pl.DataFrame, shard_ids: list[str], column: str) -> np.ndarray:
    """(shards in `shard_ids` order, 24 x RESIDUAL_DAYS hours up to the last hour of `usage`)
    `column` of `usage` (`shard_id, hour, <column>`) minus its baseline (from the
    BASELINE_DAYS before as well); NaN where the hour or its baseline is missing."""
    hours = 24 * (RESIDUAL_DAYS + BASELINE_DAYS)
    use = np.full((len(shard_ids), hours), np.nan)
    if not usage.is_empty():
        last = usage["hour"].max()
        rows = (
            usage.join(
                pl.DataFrame({"shard_id": shard_ids, "row": np.arange(len(shard_ids))}),
                on="shard_id",
            )
            .with_columns(slot=hours - 1 - (pl.lit(last) - pl.col("hour")).dt.total_hours())
            .filter(pl.col("slot") >= 0, pl.col(column).is_not_null())
        )
        use[rows["row"].to_numpy(), rows["slot"].to_numpy()] = rows[column].to_numpy()
    return (use - _baseline(use))[:, -24 * RESIDUAL_DAYS :]
