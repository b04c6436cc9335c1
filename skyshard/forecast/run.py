"""`forecast_series`: forecast every series of an input frame, spreading the per-series work
over processes, and assemble the forecast, backtest and summary tables.

Input: a polars DataFrame `series_id: str, ts: datetime, value: float` (see `series` for how
timestamps, duplicates and gaps are handled). Output tables, all sorted by series id:

- forecasts: `series_id, ts, yhat, yhat_lower, yhat_upper, model, reason,
  blend_weight_prophet, trained_at, train_start, train_end, interval, input_fingerprint`,
  one row per series and forecast hour (`ts` = train_end + 1 h ... + horizon);
- backtests: `series_id, model, cutoff, horizon_h, mase, mape, coverage, n_points`, one row
  per series, model and cut-off (`cutoff` = last training hour; `mape` in percent);
- summary: one row per series with the chosen model, why, and each model's mean backtest
  scores (`mase_*` columns), so the caller can compare median MASE across models.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from skyshard.forecast.config import ForecastConfig
from skyshard.forecast.pipeline import SeriesForecast, forecast_one
from skyshard.forecast.select import BASELINE, BLEND, PROPHET
from skyshard.forecast.series import HourlySeries, split_series

ProgressCallback = Callable[[int, int], None]

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
    "train_start": UTC_TIME,
    "train_end": UTC_TIME,
    "input_fingerprint": pl.String,
}
# Below this many series, starting worker processes (each imports Prophet) costs more than it saves.
MIN_SERIES_FOR_PROCESSES = 8


@dataclass(frozen=True)
class ForecastResult:
    forecasts: pl.DataFrame
    backtests: pl.DataFrame
    summary: pl.DataFrame


def forecast_series(
    frame: pl.DataFrame,
    horizon_h: int = 24,
    interval: float = 0.9,
    cutoffs: int = 3,
    processes: int | None = None,
    on_progress: ProgressCallback | None = None,
    trained_at: datetime | None = None,
) -> ForecastResult:
    """Forecast every series in `frame` `horizon_h` hours ahead.

    `processes`: worker processes (spawned); None uses every CPU (in-process for fewer than
    8 series), 1 runs in this process. `on_progress(done, total)` is called as series finish.
    `trained_at` defaults to now (UTC).
    """
    config = ForecastConfig(horizon_h=horizon_h, interval=interval, cutoffs=cutoffs)
    if processes is not None and processes < 1:
        raise ValueError(f"forecast processes must be at least 1, got {processes}")
    trained_at = trained_at or datetime.now(UTC)
    series = split_series(frame)
    if processes is None:
        enough = len(series) >= MIN_SERIES_FOR_PROCESSES
        processes = (os.cpu_count() or 1) if enough else 1
    results = _forecast_all(series, config, processes, on_progress or (lambda done, total: None))
    results.sort(key=lambda r: r.series.series_id)
    return ForecastResult(
        forecasts=_forecast_table(results, config, trained_at),
        backtests=_backtest_table(results, config),
        summary=_summary_table(results),
    )


def _forecast_chunk(chunk: Sequence[HourlySeries], config: ForecastConfig) -> list[SeriesForecast]:
    return [forecast_one(s, config) for s in chunk]


def _forecast_all(
    series: list[HourlySeries],
    config: ForecastConfig,
    processes: int,
    on_progress: ProgressCallback,
) -> list[SeriesForecast]:
    total = len(series)
    results: list[SeriesForecast] = []
    if processes == 1 or total <= 1:
        for s in series:
            results.append(forecast_one(s, config))
            on_progress(len(results), total)
        return results
    # Several chunks per worker balance uneven series; chunks amortise the pickling.
    chunk_size = max(1, min(32, total // (processes * 4)))
    chunks = [series[i : i + chunk_size] for i in range(0, total, chunk_size)]
    spawn = multiprocessing.get_context("spawn")  # fork is unsafe under threaded callers
    with ProcessPoolExecutor(max_workers=processes, mp_context=spawn) as pool:
        futures = [pool.submit(_forecast_chunk, chunk, config) for chunk in chunks]
        for future in as_completed(futures):
            results.extend(future.result())
            on_progress(len(results), total)
    return results


def _hours_to_times(hours: np.ndarray) -> pl.Series:
    return pl.Series(hours * 3_600_000_000, dtype=pl.Int64).cast(UTC_TIME)


def _hour_to_time(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, tz=UTC)


def _forecast_table(
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
                    "ts": _hours_to_times(r.end_hour + steps),
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


def _backtest_table(results: list[SeriesForecast], config: ForecastConfig) -> pl.DataFrame:
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


def _summary_table(results: list[SeriesForecast]) -> pl.DataFrame:
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
                "train_start": _hour_to_time(r.series.start_hour) if chosen else None,
                "train_end": _hour_to_time(r.end_hour) if chosen else None,
                "input_fingerprint": r.fingerprint,
            }
        )
    return pl.DataFrame(rows, schema=SUMMARY_SCHEMA, orient="row")
