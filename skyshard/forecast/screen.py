"""Screening: which series Prophet runs on, within a budget.

Each series gets a risk score from its cheap baseline forecast and backtest, the largest of
three terms, each scaled so that 1 means "Prophet may change a decision here":

- capacity: the share of its capacity the baseline's forecast reaches within the horizon (the
  upper bound of a demand series, or the lower bound of a free-capacity series), divided by
  `capacity_share`; no term for a series without a capacity;
- trend: a growth (or decline) the seasonal naive forecast lags behind, seen by a robust fit on
  the last 72 h: the median of the day-over-day differences (the daily cycle cancels out),
  when it is significant (its z-score against the median's standard error, from the
  differences' MAD) and moves the level by a visible share over a season plus the horizon;
- poor baseline: the baseline's mean backtest MASE over `POOR_BASELINE_MASE`.

The top `prophet_max_series` series with risk >= 1 get Prophet; ties go to the smaller id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from skyshard.forecast.batch import BaselineBlock

LIMIT_COLUMNS = {"series_id": pl.String, "capacity": pl.Float64, "measures_free": pl.Boolean}
TREND_WINDOW_H = 72
DAY = 24
# A trend counts when the median day-over-day change is this many standard errors from 0 ...
TREND_Z = 4.0
# ... and moves the level by at least this share over a season plus the horizon.
TREND_MIN_GROWTH = 0.05
POOR_BASELINE_MASE = 1.5
RISKY = 1.0


@dataclass(frozen=True)
class Risk:
    """Per row of a block: each term and the score (the largest term; 0 when none is defined)."""

    capacity: np.ndarray
    trend: np.ndarray
    poor_baseline: np.ndarray

    @property
    def score(self) -> np.ndarray:
        terms = np.stack([self.capacity, self.trend, self.poor_baseline])
        return np.max(np.nan_to_num(terms, nan=0.0), axis=0)


Limit = tuple[float, bool]  # capacity, and whether the series measures free capacity


def limits_by_id(limits: pl.DataFrame | None) -> dict[str, Limit]:
    """A limits frame (`series_id, capacity, measures_free`) as a dict, validated; errors name
    the column or the series at fault."""
    if limits is None:
        return {}
    missing = [c for c in LIMIT_COLUMNS if c not in limits.columns]
    if missing:
        raise ValueError(
            f"forecast limits are missing column(s) {missing}; they have {limits.columns}"
        )
    limits = limits.select(LIMIT_COLUMNS.keys()).cast(LIMIT_COLUMNS)
    capacity = pl.col("capacity")
    bad = limits.filter(capacity.is_null() | ~(capacity > 0.0) | capacity.is_infinite())
    if not bad.is_empty():
        row = bad.row(0, named=True)
        raise ValueError(
            f"forecast limits: capacity must be a positive finite number, got {row['capacity']!r} "
            f"for series_id={row['series_id']!r}"
        )
    if limits["measures_free"].null_count():
        raise ValueError("forecast limits: column 'measures_free' has null value(s)")
    duplicated = limits.filter(pl.col("series_id").is_duplicated())
    if not duplicated.is_empty():
        raise ValueError(
            f"forecast limits: series_id={duplicated['series_id'][0]!r} appears more than once"
        )
    return {sid: (cap, free) for sid, cap, free in limits.iter_rows()}


def _capacity_term(
    baseline: BaselineBlock, limits: dict[str, Limit], capacity_share: float
) -> np.ndarray:
    ids = baseline.block.series_ids
    capacity = np.array([limits.get(s, (np.nan, False))[0] for s in ids])
    free = np.array([limits.get(s, (np.nan, False))[1] for s in ids])
    used_share = np.where(
        free,
        1.0 - baseline.band.lower.min(axis=1) / capacity,
        baseline.band.upper.max(axis=1) / capacity,
    )
    return used_share / capacity_share


def _trend_term(baseline: BaselineBlock, horizon: int) -> np.ndarray:
    filled = baseline.block.filled[:, -TREND_WINDOW_H:]
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
        growth = np.abs(median) / DAY * (baseline.season + horizon) / level / TREND_MIN_GROWTH
    # A noise-free trend is infinitely significant; the growth term alone then decides.
    return np.nan_to_num(np.minimum(significance, growth), nan=0.0, posinf=0.0)


def risk_of(
    baseline: BaselineBlock,
    limits: dict[str, Limit],
    horizon: int,
    capacity_share: float,
) -> Risk:
    """The risk terms of every series in a baseline block; `limits` maps a series id to its
    capacity and whether the series measures free capacity (True) or use (False)."""
    return Risk(
        capacity=_capacity_term(baseline, limits, capacity_share),
        trend=_trend_term(baseline, horizon),
        poor_baseline=baseline.mean_score("mase") / POOR_BASELINE_MASE,
    )


def select_for_prophet(
    series_ids: Sequence[str], scores: np.ndarray, eligible: np.ndarray, max_series: int
) -> set[str]:
    """Ids of the at most `max_series` eligible series with the highest risk >= 1."""
    candidates = [
        (-float(score), sid)
        for sid, score, ok in zip(series_ids, scores, eligible, strict=True)
        if ok and score >= RISKY
    ]
    return {sid for _, sid in sorted(candidates)[:max_series]}
