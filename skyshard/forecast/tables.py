"""The forecast, backtest and summary tables (schemas below), built column by column from each
chunk's evaluation.

- forecasts: one row per series and forecast hour (`ts` = train_end + 1 h ... + horizon),
  bounds clipped to the series' physical limits, and the series' residual standard deviation
  (`yhat_sd`, null where too few residuals exist; older tables lack the column);
- backtests: one row per series, model and origin (`cutoff` = last training hour), for every
  model that ran there; `held_out` marks the later origins of the out-of-sample check;
- summary: one row per series: the chosen model and why; its mean MASE on every origin
  (`mase_chosen`, in sample) and, chosen on the earlier origins only, on the later ones
  (`mase_held_out`, out of sample), each next to the daily seasonal naive's; the held-out
  coverage of bounds calibrated on the earlier origins; the conformal quantiles and scale
  that make the bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast.backtest import nanmean
from skyshard.forecast.candidates import BASELINE, CHEAP
from skyshard.forecast.evaluate import NO_DATA, ChunkEval
from skyshard.forecast.series import SeriesBlock

UTC_TIME = pl.Datetime("us", "UTC")
FORECAST_SCHEMA = {
    "series_id": pl.String,
    "ts": UTC_TIME,
    "yhat": pl.Float64,
    "yhat_lower": pl.Float64,
    "yhat_upper": pl.Float64,
    "yhat_sd": pl.Float64,
    "model": pl.String,
    "reason": pl.String,
    "trained_at": UTC_TIME,
    "train_start": UTC_TIME,
    "train_end": UTC_TIME,
    "interval": pl.Float64,
    "input_fingerprint": pl.String,
}
BACKTEST_SCHEMA = {
    "series_id": pl.String,
    "model": pl.String,
    "cutoff": UTC_TIME,
    "horizon_h": pl.Int64,
    "held_out": pl.Boolean,
    "mase": pl.Float64,
    "mae": pl.Float64,
    "n_points": pl.Int64,
}
SUMMARY_SCHEMA = {
    "series_id": pl.String,
    "model": pl.String,
    "reason": pl.String,
    "n_hours": pl.Int64,
    "n_filled": pl.Int64,
    "n_cutoffs": pl.Int64,
    "slow_models_run": pl.Boolean,
    "mase_chosen": pl.Float64,
    "mase_seasonal_naive": pl.Float64,
    "model_early": pl.String,
    "mase_held_out": pl.Float64,
    "mase_seasonal_naive_held_out": pl.Float64,
    "coverage_held_out": pl.Float64,
    "n_points_held_out": pl.Int64,
    "quantile_low": pl.Float64,
    "quantile_high": pl.Float64,
    "scale": pl.Float64,
    "train_start": UTC_TIME,
    "train_end": UTC_TIME,
    "input_fingerprint": pl.String,
}
SCHEMAS = (FORECAST_SCHEMA, BACKTEST_SCHEMA, SUMMARY_SCHEMA)


@dataclass(frozen=True)
class ForecastResult:
    forecasts: pl.DataFrame
    backtests: pl.DataFrame
    summary: pl.DataFrame


@dataclass(frozen=True)
class ChunkTables:
    """What the tables need of one chunk: its evaluation (None for series without data), the
    input fingerprints, the final (lower, upper) bounds, the held-out (inside, points) per
    row, each row's conformal (low, high) quantiles and its residual standard deviation."""

    block: SeriesBlock
    chunk: ChunkEval | None
    fingerprints: list[str]
    bounds: tuple[np.ndarray, np.ndarray] | None = None
    coverage: tuple[np.ndarray, np.ndarray] | None = None
    offsets: np.ndarray | None = None
    spread: np.ndarray | None = None


def result_tables(
    parts: list[ChunkTables], settings: ForecastPolicy, trained_at: datetime
) -> ForecastResult:
    """The tables of every chunk, sorted by series id."""
    tables = [_chunk_tables(p, settings, trained_at) for p in parts]
    return ForecastResult(
        *(
            pl.concat([pl.DataFrame(schema=schema), *(t[i] for t in tables)]).sort(
                "series_id", maintain_order=True
            )
            for i, schema in enumerate(SCHEMAS)
        )
    )


def _times(hours: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(hours, dtype=np.int64) * 3_600_000_000, dtype=pl.Int64).cast(
        UTC_TIME
    )


def _floats(values: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(values, dtype=float), dtype=pl.Float64, nan_to_null=True)


def _complete(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """`frame` with the schema's columns in order; absent ones are null."""
    missing = [
        pl.lit(None, dtype).alias(name)
        for name, dtype in schema.items()
        if name not in frame.columns
    ]
    return frame.with_columns(missing).select(schema.keys()).cast(schema)


def _chunk_tables(
    part: ChunkTables, settings: ForecastPolicy, trained_at: datetime
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    block, chunk = part.block, part.chunk
    ids = pl.Series("series_id", block.series_ids, dtype=pl.String)
    fingerprints = pl.Series(part.fingerprints, dtype=pl.String)
    if chunk is None:  # no observed value: a summary row only
        summary = pl.DataFrame(
            {"series_id": ids, "reason": NO_DATA, "n_hours": 0, "n_filled": 0, "n_cutoffs": 0}
        ).with_columns(input_fingerprint=fingerprints)
        return (
            pl.DataFrame(schema=FORECAST_SCHEMA),
            pl.DataFrame(schema=BACKTEST_SCHEMA),
            _complete(summary, SUMMARY_SCHEMA),
        )
    assert part.bounds is not None and part.coverage is not None and part.offsets is not None
    assert part.spread is not None
    rows = len(block.series_ids)
    horizon, k = settings.horizon_hours, len(chunk.cutoffs)
    models = np.array(chunk.models)
    chosen = pl.Series(chunk.model_names(chunk.choice), dtype=pl.String)
    reasons = pl.Series(chunk.reasons, dtype=pl.String)
    starts, ends = block.start_hours, block.end_hours
    each_hour = np.repeat(np.arange(rows), horizon)
    steps = np.arange(1, horizon + 1)
    lower, upper = part.bounds
    forecasts = pl.DataFrame(
        {
            "series_id": ids.gather(each_hour),
            "ts": _times((ends[:, None] + steps).ravel()),
            "yhat": chunk.yhat.ravel(),
            "yhat_lower": lower.ravel(),
            "yhat_upper": upper.ravel(),
            "yhat_sd": _floats(np.repeat(part.spread, horizon)),
            "model": chosen.gather(each_hour),
            "reason": reasons.gather(each_hour),
            "input_fingerprint": fingerprints.gather(each_hour),
        }
    ).with_columns(
        trained_at=pl.lit(trained_at, UTC_TIME),
        train_start=_times(np.repeat(starts, horizon)),
        train_end=_times(np.repeat(ends, horizon)),
        interval=pl.lit(settings.interval, pl.Float64),
    )
    model_index, row_index, origin_index = np.nonzero(np.isfinite(chunk.mae))
    cutoffs = np.asarray(chunk.cutoffs, dtype=np.int64)
    n_points = np.isfinite(chunk.actual).sum(axis=2)
    backtests = pl.DataFrame(
        {
            "series_id": ids.gather(row_index),
            "model": pl.Series(models[model_index], dtype=pl.String),
            "cutoff": _times(starts[row_index] + cutoffs[origin_index] - 1),
            "held_out": chunk.held_out[origin_index],
            "mase": _floats(chunk.mase[model_index, row_index, origin_index]),
            "mae": _floats(chunk.mae[model_index, row_index, origin_index]),
            "n_points": n_points[row_index, origin_index].astype(np.int64),
        }
    ).with_columns(horizon_h=pl.lit(horizon, pl.Int64))
    baseline = chunk.mase[CHEAP.index(BASELINE)]
    inside, points = part.coverage
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = np.where(points > 0, inside / points, np.nan)
    summary = pl.DataFrame(
        {
            "series_id": ids,
            "model": chosen,
            "reason": reasons,
            "n_hours": block.n_hours,
            "n_filled": (block.n_hours - np.isfinite(block.observed).sum(axis=1)).astype(np.int64),
            "n_cutoffs": k,
            "slow_models_run": chunk.slow_run,
            "mase_chosen": _floats(nanmean(chunk.mase_chosen, axis=1)),
            "mase_seasonal_naive": _floats(nanmean(baseline, axis=1)),
            "model_early": pl.Series(chunk.model_names(chunk.choice_early), dtype=pl.String),
            "mase_held_out": _floats(nanmean(chunk.mase_early, axis=1)),
            "mase_seasonal_naive_held_out": _floats(
                nanmean(np.where(chunk.held_out[None], baseline, np.nan), axis=1)
            ),
            "coverage_held_out": _floats(coverage),
            "n_points_held_out": points.astype(np.int64),
            "quantile_low": part.offsets[:, 0],
            "quantile_high": part.offsets[:, 1],
            "scale": chunk.final_norm,
            "train_start": _times(starts),
            "train_end": _times(ends),
            "input_fingerprint": fingerprints,
        }
    )
    if not k:  # nothing was held out
        summary = summary.with_columns(model_early=pl.lit(None, pl.String))
    return (
        _complete(forecasts, FORECAST_SCHEMA),
        _complete(backtests, BACKTEST_SCHEMA),
        _complete(summary, SUMMARY_SCHEMA),
    )
