"""One chunk of equal-length series end to end: backtest every candidate (the cheap ones for
every row, the global one where it ran, the slow ones for the rows they ran on), choose per
series, and keep what the intervals, the out-of-sample check and the tables need.

Bounds are set later (`bands`), once the normalized residuals of every chunk are pooled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast.backtest import Backtest, cheap_backtest, nanmean, robust_scale
from skyshard.forecast.select import (
    choose,
    chosen_forecasts,
    combine,
    in_sample_quantiles,
    leave_one_out_choice,
    normalized_residuals,
    root_mean_square,
    split_origins,
)
from skyshard.forecast.series import SeriesBlock
from skyshard.forecast.shift import shifted_forecasts

# Why a model was chosen, as written to the `reason` column.
BEST_BACKTEST = "best_backtest"
CONSTANT = "constant"
TOO_SHORT = "too_short"
NO_DATA = "no_data"

# A series with at least this many backtest residuals (three days of hourly ones) has its
# own spread; one with fewer takes its group's.
MIN_OWN_RESIDUALS = 72

SlowResults = Mapping[int, Mapping[str, np.ndarray]]  # row -> model -> (origins + 1, horizon)
SharedResults = Mapping[str, np.ndarray]  # model -> (rows, origins + 1, horizon)


@dataclass(frozen=True)
class ChunkEval:
    """Per row of `block`: the choice and everything derived from it. Arrays over origins are
    (rows, origins[, horizon]); `mase`/`mae` are (models, rows, origins)."""

    block: SeriesBlock
    models: list[str]
    cutoffs: list[int]
    mase: np.ndarray
    mae: np.ndarray
    reasons: list[str]
    # Rows chosen by backtest, whose residuals join the pools (a constant series' zeros
    # would shrink them).
    pooled: np.ndarray
    choice: np.ndarray  # (rows, TOP) chosen on every origin: the models that forecast
    choice_early: np.ndarray  # (rows, TOP) chosen on the earlier origins only
    mase_chosen: np.ndarray  # (rows, origins) the MASE of `choice`'s forecasts
    mase_early: np.ndarray  # (rows, origins) the MASE of `choice_early`'s, later origins only
    residuals: np.ndarray  # leave-one-origin-out choice, every origin: for the bounds
    residuals_early: np.ndarray  # the same within the earlier origins: for the check
    held_out: np.ndarray  # origins mask of the later origins
    held_out_yhat: np.ndarray  # `choice_early`'s forecasts at the later origins
    actual: np.ndarray
    norm: np.ndarray
    yhat: np.ndarray  # (rows, horizon) the chosen model's forecast from the full history
    final_norm: np.ndarray  # (rows,) the scale of the full history
    floor: np.ndarray
    ceiling: np.ndarray
    slow_run: np.ndarray  # (rows,) bool: the slow models were backtested

    def model_names(self, choice: np.ndarray) -> list[str]:
        """Per row, its chosen models as one name: `a+b` for the mean of a and b."""
        names = np.asarray(self.models)
        return ["+".join(sorted(set(names[row]))) for row in choice]


def _reasons(block: SeriesBlock, backtest: Backtest) -> list[str]:
    observed = block.observed
    constant = np.nanmax(observed, axis=1) == np.nanmin(observed, axis=1)
    if not backtest.cutoffs:
        return [CONSTANT if c else TOO_SHORT for c in constant]
    return [CONSTANT if c else BEST_BACKTEST for c in constant]


def evaluate_chunk(
    block: SeriesBlock,
    settings: ForecastPolicy,
    floor: np.ndarray,
    ceiling: np.ndarray,
    slow: SlowResults,
    shared: SharedResults | None = None,
) -> ChunkEval:
    """Backtest, choose and keep the residuals for a chunk with at least one observed hour.
    `slow` holds the slow models' forecasts for the rows they ran on, `shared` those of the
    models run on every row at once (the global model)."""
    shared = shared or {}
    horizon, filled = settings.horizon_hours, block.filled

    def forecasts_at(cut: int) -> dict[str, np.ndarray]:
        return shifted_forecasts(
            block.observed, filled, cut, horizon, settings.level_shift_hours, settings.interval
        )

    backtest = cheap_backtest(
        block.observed, horizon, settings.backtest_cutoffs, floor, forecasts_at
    )
    finals = forecasts_at(block.n_hours)
    final = np.stack([finals[m] for m in backtest.models])
    slow_models = sorted({m for per_row in slow.values() for m in per_row})
    every_row = np.arange(len(block.series_ids))
    added = [(model, every_row, runs) for model, runs in shared.items()]
    for model in slow_models:
        rows = np.array([r for r in slow if model in slow[r]], dtype=int)
        added.append((model, rows, np.stack([slow[r][model] for r in rows])))
    for model, rows, runs in added:
        backtest.add_model(model, rows, np.maximum(runs[:, :-1], floor[rows, None, None]))
        extra = np.full((1, *final.shape[1:]), np.nan)
        extra[0, rows] = runs[:, -1]
        final = np.concatenate([final, extra])
    mae = backtest.mae()
    backtest = backtest.with_fallback()  # models, cutoffs and scale are unchanged
    error = backtest.mae() / backtest.norm[None]
    k = len(backtest.cutoffs)
    early, held = split_origins(k)
    everything = np.ones(k, dtype=bool)
    reasons = _reasons(block, backtest)
    # A constant series keeps the baseline: every candidate repeats the constant anyway.
    pooled = np.array([r == BEST_BACKTEST for r in reasons], dtype=bool)
    choice = np.where(pooled[:, None], choose(error, everything), 0)
    choice_early = choose(error, early)

    def scores(choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, origins, horizon) forecasts of one choice per row, and their MASE."""
        yhat = chosen_forecasts(backtest, np.repeat(choice[:, None], k, axis=1))
        return yhat, nanmean(np.abs(backtest.actual - yhat), axis=2) / backtest.scale

    held_yhat, mase_early = scores(choice_early)
    rows = np.arange(len(choice))
    final_norm = robust_scale(block.observed)
    return ChunkEval(
        block=block,
        models=backtest.models,
        cutoffs=backtest.cutoffs,
        mase=mae / backtest.scale[None],
        mae=mae,
        reasons=reasons,
        pooled=pooled,
        choice=choice,
        choice_early=choice_early,
        mase_chosen=scores(choice)[1],
        mase_early=np.where(held[None], mase_early, np.nan),
        residuals=normalized_residuals(
            backtest, leave_one_out_choice(error, everything), everything
        ),
        residuals_early=normalized_residuals(backtest, leave_one_out_choice(error, early), early),
        held_out=held,
        held_out_yhat=np.where(held[None, :, None], held_yhat, np.nan),
        actual=backtest.actual,
        norm=backtest.norm,
        yhat=np.clip(combine(final, choice), floor[:, None], ceiling[:, None]),
        final_norm=final_norm,
        floor=floor,
        ceiling=ceiling,
        slow_run=np.isin(rows, list(slow)),
    )


def row_offsets(
    chunk: ChunkEval,
    quantiles: Mapping[str, tuple[float, float]],
    groups: list[str],
    interval: float,
) -> np.ndarray:
    """(rows, 2): each row's lower and upper normalized quantile, its group's or, without
    one, its in-sample quantiles."""
    offsets = np.zeros((len(groups), 2))
    alone = np.array([g not in quantiles for g in groups], dtype=bool)
    for row in np.flatnonzero(~alone):
        offsets[row] = quantiles[groups[row]]
    if alone.any():
        observed = chunk.block.observed[alone]
        offsets[alone] = in_sample_quantiles(observed, chunk.final_norm[alone], interval)
    return offsets


def bounds(
    chunk: ChunkEval,
    quantiles: Mapping[str, tuple[float, float]],
    groups: list[str],
    interval: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, horizon) lower and upper bounds of the final forecasts, clipped to the physical
    limits; a constant series' bounds are its point forecast."""
    offsets = row_offsets(chunk, quantiles, groups, interval) * chunk.pooled[:, None]
    spread = offsets[:, :, None] * chunk.final_norm[:, None, None]
    floor, ceiling = chunk.floor[:, None], chunk.ceiling[:, None]
    return (
        np.clip(chunk.yhat + spread[:, 0], floor, ceiling),
        np.clip(chunk.yhat + spread[:, 1], floor, ceiling),
    )


def spreads(chunk: ChunkEval, group_spread: Mapping[str, float], groups: list[str]) -> np.ndarray:
    """(rows,) each series' residual standard deviation (root mean square of its normalized
    backtest residuals, in its own units): what a sum of independent series varies by, where
    the interval bounds only tell a tail. A series' own when it has `MIN_OWN_RESIDUALS`, else
    its group's (`group_spread`), else NaN (users then fall back to the bounds); 0 for a
    constant series, like its bounds."""
    own = root_mean_square(chunk.residuals * chunk.norm[:, :, None], axis=(1, 2))
    enough = np.isfinite(chunk.residuals).sum(axis=(1, 2)) >= MIN_OWN_RESIDUALS
    shared = np.array([group_spread.get(g, np.nan) for g in groups], dtype=float)
    return np.where(enough, own, shared * chunk.final_norm) * chunk.pooled


def held_out_coverage(
    chunk: ChunkEval,
    quantiles: Mapping[str, tuple[float, float]],
    groups: list[str],
    interval: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the observed held-out hours inside the bands calibrated on the earlier origins
    (`quantiles` from `residuals_early`), and the number of observed held-out hours."""
    offsets = row_offsets(chunk, quantiles, groups, interval)
    norm = chunk.norm[:, :, None]
    floor, ceiling = chunk.floor[:, None, None], chunk.ceiling[:, None, None]
    lower = np.clip(chunk.held_out_yhat + offsets[:, 0, None, None] * norm, floor, ceiling)
    upper = np.clip(chunk.held_out_yhat + offsets[:, 1, None, None] * norm, floor, ceiling)
    known = np.isfinite(chunk.actual) & np.isfinite(chunk.held_out_yhat)
    inside = known & (chunk.actual >= lower) & (chunk.actual <= upper)
    return inside.sum(axis=(1, 2)), known.sum(axis=(1, 2))
