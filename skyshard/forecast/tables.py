"""The forecast, backtest and summary tables (schemas below), assembled row by row from
per-series results (the Prophet path) or column by column from baseline blocks (every other
series), then merged; both give the same rows for the same series.

- forecasts: one row per series and forecast hour (`ts` = train_end + 1 h ... + horizon);
- backtests: one row per series, model and cut-off (`cutoff` = last training hour; `mape` in
  percent);
- summary: one row per series with the chosen model, why, its risk score from screening, and
  each model's mean backtest scores (`mase_*` columns), to compare median MASE across models.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from skyshard.forecast.batch import BaselineBlock
from skyshard.forecast.config import ForecastConfig
from skyshard.forecast.pipeline import SeriesForecast
from skyshard.forecast.select import BASELINE, BLEND, PROPHET
from skyshard.forecast.series import SeriesBlock

UTC_TIME = pl.Datetime("us", "UTC")
FORECAST_SCHEMA = {
    "series_id": pl.String,
    "ts": UTC_TIME,
    "yhat": pl.Float64,
    "yhat_lower": pl.Float64,
    "yhat_upper": pl.Float64,
    "model": pl.String,
    "reason": pl.String,
    "blend_weight_prophet": pl.Float64,
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
    "mase": pl.Float64,
    "mape": pl.Float64,
    "coverage": pl.Float64,
    "n_points": pl.Int64,
}
SUMMARY_SCHEMA = {
    "series_id": pl.String,
    "model": pl.String,
    "reason": pl.String,
    "blend_weight_prophet": pl.Float64,
    "season_h": pl.Int64,
    "n_hours": pl.Int64,
    "n_filled": pl.Int64,
    "n_cutoffs": pl.Int64,
    "selected_on": pl.String,
    "mase_chosen": pl.Float64,
    "mase_prophet": pl.Float64,
    "mase_seasonal_naive": pl.Float64,
    "mase_blend": pl.Float64,
    "mape_chosen": pl.Float64,
    "coverage_chosen": pl.Float64,
    "risk_score": pl.Float64,
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
class BaselineRows:
    """Series of one block that keep the baseline: their row numbers in the block, why, their
    risk scores (NaN where not computed) and fingerprints (both per block row)."""

    block: SeriesBlock
    baseline: BaselineBlock | None  # None for the block of series without data
    rows: np.ndarray
    reasons: list[str]
    risk: np.ndarray
    fingerprints: list[str]


def series_tables(
    results: list[SeriesForecast], config: ForecastConfig, trained_at: datetime
) -> ForecastResult:
    """The tables of per-series results, sorted by series id."""
    results = sorted(results, key=lambda r: r.series.series_id)
    return ForecastResult(
        forecasts=_series_forecast_table(results, config, trained_at),
        backtests=_series_backtest_table(results, config),
        summary=_series_summary_table(results),
    )


def baseline_tables(
    parts: list[BaselineRows], config: ForecastConfig, trained_at: datetime
) -> ForecastResult:
    """The tables of the baseline rows of every block, sorted by series id."""
    tables = [_block_tables(p, config, trained_at) for p in parts if len(p.rows)]
    if not tables:
        return ForecastResult(*(pl.DataFrame(schema=s) for s in SCHEMAS))
    return ForecastResult(
        *(
            pl.concat([t[i] for t in tables]).sort("series_id", maintain_order=True)
            for i in range(3)
        )
    )


def merge(first: ForecastResult, second: ForecastResult) -> ForecastResult:
    """Both results' rows in one set of tables, sorted by series id (series appear in one)."""
    return ForecastResult(
        *(
            pl.concat([a, b]).sort("series_id", maintain_order=True)
            for a, b in zip(
                (first.forecasts, first.backtests, first.summary),
                (second.forecasts, second.backtests, second.summary),
                strict=True,
            )
        )
    )


def _times(hours: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(hours, dtype=np.int64) * 3_600_000_000, dtype=pl.Int64).cast(
        UTC_TIME
    )


def _floats(values: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(values, dtype=float), dtype=pl.Float64, nan_to_null=True)


def _block_tables(
    part: BaselineRows, config: ForecastConfig, trained_at: datetime
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    block, rows = part.block, part.rows
    ids = pl.Series("series_id", [block.series_ids[r] for r in rows], dtype=pl.String)
    reasons = pl.Series([part.reasons[r] for r in rows], dtype=pl.String)
    fingerprints = pl.Series([part.fingerprints[r] for r in rows], dtype=pl.String)
    starts, ends = block.start_hours[rows], block.end_hours[rows]
    n_filled = block.n_hours - np.isfinite(block.observed[rows]).sum(axis=1)
    base = part.baseline
    if base is None:  # no observed value: a summary row only
        summary = pl.DataFrame(
            {
                "series_id": ids,
                "reason": reasons,
                "season_h": 0,
                "n_hours": 0,
                "n_filled": 0,
                "n_cutoffs": 0,
                "input_fingerprint": fingerprints,
            }
        )
        return (
            pl.DataFrame(schema=FORECAST_SCHEMA),
            pl.DataFrame(schema=BACKTEST_SCHEMA),
            _complete(summary, SUMMARY_SCHEMA),
        )
    horizon, k = config.horizon_h, len(base.cutoffs)
    steps = np.arange(1, horizon + 1)
    forecasts = pl.DataFrame(
        {
            "series_id": ids.gather(np.repeat(np.arange(len(rows)), horizon)),
            "ts": _times((ends[:, None] + steps).ravel()),
            "yhat": base.band.yhat[rows].ravel(),
            "yhat_lower": base.band.lower[rows].ravel(),
            "yhat_upper": base.band.upper[rows].ravel(),
            "reason": reasons.gather(np.repeat(np.arange(len(rows)), horizon)),
            "input_fingerprint": fingerprints.gather(np.repeat(np.arange(len(rows)), horizon)),
        }
    ).with_columns(
        model=pl.lit(BASELINE),
        trained_at=pl.lit(trained_at, UTC_TIME),
        train_start=_times(np.repeat(starts, horizon)),
        train_end=_times(np.repeat(ends, horizon)),
        interval=pl.lit(config.interval, pl.Float64),
    )
    cutoffs = np.asarray(base.cutoffs, dtype=np.int64)
    backtests = pl.DataFrame(
        {
            "series_id": ids.gather(np.repeat(np.arange(len(rows)), k)),
            "cutoff": _times((starts[:, None] + cutoffs - 1).ravel()),
            **{
                name: _floats(base.folds[name][rows].ravel())
                for name in ("mase", "mape", "coverage")
            },
            "n_points": base.folds["n_points"][rows].ravel().astype(np.int64),
        }
    ).with_columns(model=pl.lit(BASELINE), horizon_h=pl.lit(horizon, pl.Int64))
    mase = _floats(base.mean_score("mase")[rows])
    summary = pl.DataFrame(
        {
            "series_id": ids,
            "reason": reasons,
            "season_h": base.season,
            "n_hours": block.n_hours,
            "n_filled": n_filled.astype(np.int64),
            "n_cutoffs": k,
            "mase_chosen": mase,
            "mase_seasonal_naive": mase,
            "mape_chosen": _floats(base.mean_score("mape")[rows]),
            "coverage_chosen": _floats(base.mean_score("coverage")[rows]),
            "risk_score": _floats(part.risk[rows]),
            "train_start": _times(starts),
            "train_end": _times(ends),
            "input_fingerprint": fingerprints,
        }
    ).with_columns(model=pl.lit(BASELINE))
    return (
        _complete(forecasts, FORECAST_SCHEMA),
        _complete(backtests, BACKTEST_SCHEMA),
        _complete(summary, SUMMARY_SCHEMA),
    )


def _complete(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """`frame` with the schema's columns in order; absent ones are null."""
    missing = [
        pl.lit(None, dtype).alias(name)
        for name, dtype in schema.items()
        if name not in frame.columns
    ]
    return frame.with_columns(missing).select(schema.keys()).cast(schema)


def _hour_to_time(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, tz=UTC)


def _series_forecast_table(
    results: list[SeriesForecast], config: ForecastConfig, trained_at: datetime
) -> pl.DataFrame:
    parts = []
    horizon = config.horizon_h
    steps = np.arange(1, horizon + 1)
    for r in results:
        if r.band is None:
            continue
        parts.append(
            pl.DataFrame(
                {
                    "series_id": [r.series.series_id] * horizon,
                    "ts": _times(r.end_hour + steps),
                    "yhat": r.band.yhat,
                    "yhat_lower": r.band.lower,
                    "yhat_upper": r.band.upper,
                }
            ).with_columns(
                model=pl.lit(r.model),
                reason=pl.lit(r.reason),
                blend_weight_prophet=pl.lit(r.blend_weight_prophet, pl.Float64),
                trained_at=pl.lit(trained_at, UTC_TIME),
                train_start=pl.lit(_hour_to_time(r.series.start_hour), UTC_TIME),
                train_end=pl.lit(_hour_to_time(r.end_hour), UTC_TIME),
                interval=pl.lit(config.interval, pl.Float64),
                input_fingerprint=pl.lit(r.fingerprint),
            )
        )
    if not parts:
        return pl.DataFrame(schema=FORECAST_SCHEMA)
    return pl.concat(parts).select(FORECAST_SCHEMA.keys()).cast(FORECAST_SCHEMA)


def _series_backtest_table(results: list[SeriesForecast], config: ForecastConfig) -> pl.DataFrame:
    rows = []
    for r in results:
        for fold in r.folds:
            cutoff = _hour_to_time(r.series.start_hour + fold.cutoff - 1)
            for model in fold.bands:
                scores = fold.scores(model)
                rows.append(
                    {
                        "series_id": r.series.series_id,
                        "model": model,
                        "cutoff": cutoff,
                        "horizon_h": config.horizon_h,
                        "mase": scores.mase,
                        "mape": scores.mape,
                        "coverage": scores.coverage,
                        "n_points": scores.n_points,
                    }
                )
    return pl.DataFrame(rows, schema=BACKTEST_SCHEMA, orient="row")


def _series_summary_table(results: list[SeriesForecast]) -> pl.DataFrame:
    rows = []
    for r in results:
        chosen = r.model
        rows.append(
            {
                "series_id": r.series.series_id,
                "model": chosen,
                "reason": r.reason,
                "blend_weight_prophet": r.blend_weight_prophet,
                "season_h": r.season,
                "n_hours": len(r.series.observed),
                "n_filled": r.series.n_filled,
                "n_cutoffs": len(r.folds),
                "selected_on": r.selected_on,
                "mase_chosen": r.mean_mase(chosen) if chosen else None,
                "mase_prophet": r.mean_mase(PROPHET),
                "mase_seasonal_naive": r.mean_mase(BASELINE),
                "mase_blend": r.mean_mase(BLEND),
                "mape_chosen": r.mean_score(chosen, "mape") if chosen else None,
                "coverage_chosen": r.mean_score(chosen, "coverage") if chosen else None,
                "risk_score": r.risk,
                "train_start": _hour_to_time(r.series.start_hour) if chosen else None,
                "train_end": _hour_to_time(r.end_hour) if chosen else None,
                "input_fingerprint": r.fingerprint,
            }
        )
    return pl.DataFrame(rows, schema=SUMMARY_SCHEMA, orient="row")
