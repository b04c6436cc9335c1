"""Screening: the order in which the slow candidates run within the time budget, riskiest first.

Each series gets a risk score from its cheap forecast (the best cheap candidate with its
conformal band) and backtest, the largest of three terms, each scaled so that 1 means "a
better forecast may change a decision here":

- capacity: the share of its capacity the forecast reaches within the horizon (the upper
  bound of a demand series, or the lower bound of a free-capacity series), divided by
  `capacity_share`; no term for a series without a capacity;
- trend: a growth (or decline) a seasonal forecast lags behind, seen by a robust fit on the
  last 72 h: the median of the day-over-day differences (the daily cycle cancels out), when
  it is significant (its z-score against the median's standard error, from the differences'
  MAD) and moves the level by a visible share over a day plus the horizon;
- poor fit: the best cheap candidate's mean backtest MASE over `POOR_FIT_MASE`.

Slow models then run on every eligible series in that order (ties to the smaller id) until
the time budget is spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from skyshard.forecast.series import SeriesBlock

LIMIT_COLUMNS = {"series_id": pl.String, "capacity": pl.Float64, "measures_free": pl.Boolean}
# Optional: the physical maximum of the series (e.g. a host's whole capacity for a shard's
# demand); bounds are clipped to it. A free-capacity series' ceiling is its capacity.
CEILING = "ceiling"
TREND_WINDOW_H = 72
DAY = 24
# A trend counts when the median day-over-day change is this many standard errors from 0 ...
TREND_Z = 4.0
# ... and moves the level by at least this share over a season plus the horizon.
TREND_MIN_GROWTH = 0.05
POOR_FIT_MASE = 1.5


@dataclass(frozen=True)
class Risk:
    """Per row of a block: each term and the score (the largest term; 0 when none is defined)."""

    capacity: np.ndarray
    trend: np.ndarray
    poor_fit: np.ndarray

    @property
    def score(self) -> np.ndarray:
        terms = np.stack([self.capacity, self.trend, self.poor_fit])
        return np.max(np.nan_to_num(terms, nan=0.0), axis=0)


@dataclass(frozen=True)
class Limit:
    capacity: float
    measures_free: bool  # the series measures free capacity (True) or use (False)
    ceiling: float | None  # physical maximum, when known


def limits_by_id(limits: pl.DataFrame | None) -> dict[str, Limit]:
    """A limits frame (`series_id, capacity, measures_free[, ceiling]`) as a dict, validated;
    errors name the column or the series at fault."""
    if limits is None:
        return {}
    missing = [c for c in LIMIT_COLUMNS if c not in limits.columns]
    if missing:
        raise ValueError(
            f"forecast limits are missing column(s) {missing}; they have {limits.columns}"
        )
    if CEILING not in limits.columns:
        limits = limits.with_columns(pl.lit(None, pl.Float64).alias(CEILING))
    limits = limits.select(*LIMIT_COLUMNS, CEILING).cast({**LIMIT_COLUMNS, CEILING: pl.Float64})
    for column in ("capacity", CEILING):
        value = pl.col(column)
        bad = limits.filter(~(value > 0.0) | value.is_infinite())
        if column == "capacity":
            bad = bad.vstack(limits.filter(value.is_null()))
        if not bad.is_empty():
            row = bad.row(0, named=True)
            raise ValueError(
                f"forecast limits: {column} must be a positive finite number, got "
                f"{row[column]!r} for series_id={row['series_id']!r}"
            )
    if limits["measures_free"].null_count():
        raise ValueError("forecast limits: column 'measures_free' has null value(s)")
    duplicated = limits.filter(pl.col("series_id").is_duplicated())
    if not duplicated.is_empty():
        raise ValueError(
            f"forecast limits: series_id={duplicated['series_id'][0]!r} appears more than once"
        )
    return {
        sid: Limit(cap, free, cap if free and ceiling is None else ceiling)
        for sid, cap, free, ceiling in limits.iter_rows()
    }


def _capacity_term(
    ids: Sequence[str],
    lower: np.ndarray,
    upper: np.ndarray,
    limits: dict[str, Limit],
    capacity_share: float,
) -> np.ndarray:
    known = [limits.get(s) for s in ids]
    capacity = np.array([np.nan if k is None else k.capacity for k in known])
    free = np.array([k is not None and k.measures_free for k in known])
    used_share = np.where(free, 1.0 - lower.min(axis=1) / capacity, upper.max(axis=1) / capacity)
    return used_share / capacity_share


def _trend_term(block: SeriesBlock, horizon: int) -> np.ndarray:
    filled = block.filled[:, -TREND_WINDOW_H:]
    rows = filled.shape[0]
    if filled.shape[1] <= DAY:
        return np.full(rows, np.nan)
    changes = filled[:, DAY:] - filled[:, :-DAY]
    median = np.median(changes, axis=1)
    sigma = 1.4826 * np.median(np.abs(changes - median[:, None]), axis=1)
    standard_error = 1.2533 * sigma / np.sqrt(changes.shape[1])  # of a median, normal noise
    with np.errstate(divide="ignore", invalid="ignore"):
        significance = np.abs(median) / standard_error / TREND_Z
        level = np.abs(filled[:, -DAY:].mean(axis=1))
        growth = np.abs(median) / DAY * (DAY + horizon) / level / TREND_MIN_GROWTH
    # A noise-free trend is infinitely significant; the growth term alone then decides.
    return np.nan_to_num(np.minimum(significance, growth), nan=0.0, posinf=0.0)


def risk_of(
    block: SeriesBlock,
    lower: np.ndarray,
    upper: np.ndarray,
    mase: np.ndarray,
    limits: dict[str, Limit],
    horizon: int,
    capacity_share: float,
) -> Risk:
    """The risk terms of every row of a block, from its cheap forecast's (rows, horizon)
    bounds and mean backtest MASE; `limits` maps a series id to its `Limit`."""
    return Risk(
        capacity=_capacity_term(block.series_ids, lower, upper, limits, capacity_share),
        trend=_trend_term(block, horizon),
        poor_fit=mase / POOR_FIT_MASE,
    )


def priority_order(series_ids: Sequence[str], scores: np.ndarray) -> list[str]:
    """The series ids, riskiest first, ties to the smaller id."""
    return [sid for _, sid in sorted(zip((-scores).tolist(), series_ids, strict=True))]
