"""`forecast_series`: forecast every series of an input frame. The seasonal-naive baseline and
its backtest run for all series at once (vectorized, per block of equal length); screening
then sends the riskiest series, within the Prophet budget, through the per-series path
(Prophet, baseline and blend, chosen by backtest) on worker processes.

Input: a polars DataFrame `series_id: str, ts: datetime, value: float` (see `series` for how
timestamps, duplicates and gaps are handled), and optionally `limits`: `series_id, capacity,
measures_free` (see `screen`). Output: the tables described in `tables`.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import polars as pl

from skyshard.forecast.batch import baseline_block
from skyshard.forecast.config import ForecastConfig
from skyshard.forecast.fingerprint import block_fingerprints
from skyshard.forecast.pipeline import (
    CONSTANT,
    NO_DATA,
    SCREENED_LOW_RISK,
    TOO_SHORT,
    SeriesForecast,
    forecast_one,
)
from skyshard.forecast.screen import Limit, limits_by_id, risk_of, select_for_prophet
from skyshard.forecast.series import HourlySeries, SeriesBlock, series_blocks
from skyshard.forecast.tables import (  # FORECAST_SCHEMA: re-exported, callers import it here
    FORECAST_SCHEMA as FORECAST_SCHEMA,
)
from skyshard.forecast.tables import (
    BaselineRows,
    ForecastResult,
    baseline_tables,
    merge,
    series_tables,
)

ProgressCallback = Callable[[int, int], None]
StageCallback = Callable[[str], None]
# Below this many series, starting worker processes (each imports Prophet) costs more than it saves.
MIN_SERIES_FOR_PROCESSES = 8


def forecast_series(
    frame: pl.DataFrame,
    horizon_h: int = 24,
    interval: float = 0.9,
    cutoffs: int = 3,
    processes: int | None = None,
    on_progress: ProgressCallback | None = None,
    trained_at: datetime | None = None,
    *,
    prophet_max_series: int = ForecastConfig.prophet_max_series,
    capacity_share: float = ForecastConfig.capacity_share,
    limits: pl.DataFrame | None = None,
    on_stage: StageCallback | None = None,
) -> ForecastResult:
    """Forecast every series in `frame` `horizon_h` hours ahead.

    Prophet runs on at most `prophet_max_series` series, the riskiest (see `screen`);
    `limits` gives series their capacity for the screening's capacity term.
    `processes`: worker processes (spawned) for the Prophet series; None uses every CPU
    (in-process for fewer than 8 series), 1 runs in this process. `on_progress(done, total)`
    is called as Prophet series finish, `on_stage(message)` after each stage.
    `trained_at` defaults to now (UTC).
    """
    config = ForecastConfig(
        horizon_h=horizon_h,
        interval=interval,
        cutoffs=cutoffs,
        prophet_max_series=prophet_max_series,
        capacity_share=capacity_share,
    )
    if processes is not None and processes < 1:
        raise ValueError(f"forecast processes must be at least 1, got {processes}")
    trained_at = trained_at or datetime.now(UTC)
    stage = on_stage or (lambda message: None)
    started = time.perf_counter()
    by_limit = limits_by_id(limits)
    parts = [_baseline_rows(block, config, by_limit) for block in series_blocks(frame)]
    n_series = sum(len(p.block.series_ids) for p in parts)
    stage(
        f"seasonal-naive forecasts and backtests for {n_series} series "
        f"in {time.perf_counter() - started:.1f} s"
    )

    selected = select_for_prophet(
        [sid for p in parts for sid in p.block.series_ids],
        np.concatenate([p.risk for p in parts]) if parts else np.empty(0),
        np.concatenate([_eligible(p) for p in parts]) if parts else np.empty(0, bool),
        config.prophet_max_series,
    )
    risky = sum(int(np.sum(_eligible(p) & (p.risk >= 1.0))) for p in parts)
    stage(
        f"screening: {risky} risky series, Prophet on {len(selected)} "
        f"(budget {config.prophet_max_series}); {n_series - len(selected)} keep the baseline"
    )
    to_fit, kept = [], []
    for part in parts:
        chosen = np.array([sid in selected for sid in part.block.series_ids], dtype=bool)
        to_fit += [
            (part.block.series(r), part.fingerprints[r], float(part.risk[r]))
            for r in np.flatnonzero(chosen)
        ]
        kept.append(replace(part, rows=np.flatnonzero(~chosen)))

    started = time.perf_counter()
    if processes is None:
        processes = (os.cpu_count() or 1) if len(to_fit) >= MIN_SERIES_FOR_PROCESSES else 1
    fitted = _forecast_all(to_fit, config, processes, on_progress or (lambda done, total: None))
    if to_fit:
        stage(
            f"Prophet backtests and fits for {len(to_fit)} series "
            f"in {time.perf_counter() - started:.1f} s with {processes} process(es)"
        )
    return merge(
        baseline_tables(kept, config, trained_at), series_tables(fitted, config, trained_at)
    )


def _baseline_rows(
    block: SeriesBlock, config: ForecastConfig, limits: Mapping[str, Limit]
) -> BaselineRows:
    """Baseline, reasons and risk for every row of a block (all rows kept for now)."""
    rows = np.arange(len(block.series_ids))
    fingerprints = block_fingerprints(block, config, limits)
    if block.n_hours == 0:
        no_data = [NO_DATA] * len(rows)
        return BaselineRows(block, None, rows, no_data, np.full(len(rows), np.nan), fingerprints)
    baseline = baseline_block(block, config)
    constant = np.nanmax(block.observed, axis=1) == np.nanmin(block.observed, axis=1)
    fallback = TOO_SHORT if not baseline.cutoffs else SCREENED_LOW_RISK
    reasons = [CONSTANT if c else fallback for c in constant]
    risk = risk_of(baseline, limits, config.horizon_h, config.capacity_share).score
    return BaselineRows(block, baseline, rows, reasons, risk, fingerprints)


def _eligible(part: BaselineRows) -> np.ndarray:
    """Rows that Prophet may run on: observed, not constant, long enough to backtest."""
    return np.array([r == SCREENED_LOW_RISK for r in part.reasons], dtype=bool)


ToFit = tuple[HourlySeries, str, float]  # series, fingerprint, risk score


def _forecast_chunk(chunk: Sequence[ToFit], config: ForecastConfig) -> list[SeriesForecast]:
    return [replace(forecast_one(s, config, fp), risk=risk) for s, fp, risk in chunk]


def _forecast_all(
    to_fit: list[ToFit], config: ForecastConfig, processes: int, on_progress: ProgressCallback
) -> list[SeriesForecast]:
    total = len(to_fit)
    results: list[SeriesForecast] = []
    if processes == 1 or total <= 1:
        for item in to_fit:
            results.extend(_forecast_chunk([item], config))
            on_progress(len(results), total)
        return results
    # Several chunks per worker balance uneven series; chunks amortise the pickling.
    chunk_size = max(1, min(32, total // (processes * 4)))
    chunks = [to_fit[i : i + chunk_size] for i in range(0, total, chunk_size)]
    spawn = multiprocessing.get_context("spawn")  # fork is unsafe under threaded callers
    with ProcessPoolExecutor(max_workers=processes, mp_context=spawn) as pool:
        futures = [pool.submit(_forecast_chunk, chunk, config) for chunk in chunks]
        for future in as_completed(futures):
            results.extend(future.result())
            on_progress(len(results), total)
    return results
