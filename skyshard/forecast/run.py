"""`forecast_series`: forecast every series of an input frame.

1. With `global_model` on, the global candidate is backtested first (one model per origin
   for every series ending in the same hour, `global_model.py`). Every series is backtested
   with it and every cheap candidate (vectorized, per chunk of equal length) and gets its
   best models, conformal bounds and a risk score.
2. The slow candidates run series by series, riskiest first, on worker processes, until the
   time budget (`slow_budget_seconds`) is spent.
3. Series the slow models ran on are chosen again among all candidates; conformal quantiles
   are pooled per group over every series; the tables are written.

Input: a polars DataFrame `series_id: str, ts: datetime, value: float` (see `series` for how
timestamps, duplicates and gaps are handled), and optionally `limits` (see `screen`).
Output: the tables described in `tables`.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from datetime import UTC, datetime

import numpy as np
import polars as pl

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast.backtest import nanmean
from skyshard.forecast.evaluate import (
    ChunkEval,
    SharedResults,
    SlowResults,
    bounds,
    evaluate_chunk,
    held_out_coverage,
    row_offsets,
    spreads,
)
from skyshard.forecast.fingerprint import block_fingerprints
from skyshard.forecast.global_model import global_backtest
from skyshard.forecast.screen import Limit, limits_by_id, priority_order, risk_of
from skyshard.forecast.select import group_quantiles, per_group, root_mean_square
from skyshard.forecast.series import SeriesBlock, series_blocks
from skyshard.forecast.series_id import series_group
from skyshard.forecast.slow import slow_backtest
from skyshard.forecast.tables import (  # FORECAST_SCHEMA: re-exported, callers import it here
    FORECAST_SCHEMA as FORECAST_SCHEMA,
)
from skyshard.forecast.tables import ChunkTables, ForecastResult, result_tables

ProgressCallback = Callable[[int, int], None]
StageCallback = Callable[[str], None]
# Rows per vectorized chunk: bounds the memory of the backtest arrays on large skies.
CHUNK_ROWS = 2048
# Below this many series, starting worker processes (each imports the models) costs more
# than it saves.
MIN_SERIES_FOR_PROCESSES = 8


def forecast_series(
    frame: pl.DataFrame,
    settings: ForecastPolicy | None = None,
    *,
    limits: pl.DataFrame | None = None,
    processes: int | None = None,
    trained_at: datetime | None = None,
    on_progress: ProgressCallback | None = None,
    on_stage: StageCallback | None = None,
) -> ForecastResult:
    """Forecast every series in `frame` `settings.horizon_hours` hours ahead (default settings
    when None; the planning cycle passes `policy.forecast`).

    `limits` gives series their capacity (risk order) and physical ceiling (bounds).
    `processes`: worker processes (spawned) for the slow models; None uses every CPU (in
    this process for fewer than 8 series), 1 runs in this process. `on_progress(done,
    total)` is called as slow series finish, `on_stage(message)` after each stage.
    `trained_at` defaults to now (UTC).
    """
    settings = settings or ForecastPolicy()
    if processes is not None and processes < 1:
        raise ValueError(f"forecast processes must be at least 1, got {processes}")
    trained_at = trained_at or datetime.now(UTC)
    stage = on_stage or (lambda message: None)
    started = time.perf_counter()
    by_limit = limits_by_id(limits)
    blocks = series_blocks(frame)
    pairs = [
        pair
        for block, shared in zip(blocks, global_backtest(blocks, settings), strict=True)
        for pair in _chunks(block, shared)
    ]
    chunks, shared = [c for c, _ in pairs], [s for _, s in pairs]
    n_series = sum(len(c.series_ids) for c in chunks)
    if settings.global_model:
        stage(
            f"global model backtested on {n_series} series in {time.perf_counter() - started:.1f} s"
        )
        started = time.perf_counter()
    evaluated = [
        _evaluate(c, settings, by_limit, {}, s) for c, s in zip(chunks, shared, strict=True)
    ]
    stage(
        f"cheap candidates backtested on {n_series} series in {time.perf_counter() - started:.1f} s"
    )
    order = _slow_order(evaluated, settings, by_limit)
    started = time.perf_counter()
    slow = _run_slow(order, settings, processes, on_progress or (lambda done, total: None))
    if slow:
        stage(
            f"slow candidates {list(settings.slow_models)} backtested on {len(slow)} of "
            f"{len(order)} series in {time.perf_counter() - started:.1f} s"
        )
    for index, chunk in enumerate(chunks):
        mine = {row: fits for (at, row), fits in slow.items() if at == index}
        if mine:
            evaluated[index] = _evaluate(chunk, settings, by_limit, mine, shared[index])
    return _tables(chunks, evaluated, settings, by_limit, trained_at)


def _chunks(
    block: SeriesBlock, shared: SharedResults
) -> Iterator[tuple[SeriesBlock, SharedResults]]:
    """The block in chunks of `CHUNK_ROWS`, each with its rows of the shared models' runs."""
    for start in range(0, len(block.series_ids), CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        chunk = SeriesBlock(block.series_ids[rows], block.start_hours[rows], block.observed[rows])
        yield chunk, {model: runs[rows] for model, runs in shared.items()}


def _physical_limits(
    block: SeriesBlock, limits: Mapping[str, Limit]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the floor (0, unless the series has negative values) and the ceiling."""
    observed_min = np.nanmin(block.observed, axis=1)
    floor = np.minimum(observed_min, 0.0)
    ceiling = [limits[s].ceiling if s in limits else None for s in block.series_ids]
    return floor, np.array([np.inf if c is None else c for c in ceiling])


def _evaluate(
    block: SeriesBlock,
    settings: ForecastPolicy,
    limits: Mapping[str, Limit],
    slow: SlowResults,
    shared: SharedResults,
) -> ChunkEval | None:
    if block.n_hours == 0:
        return None
    floor, ceiling = _physical_limits(block, limits)
    return evaluate_chunk(block, settings, floor, np.maximum(ceiling, floor), slow, shared)


def _groups(chunk: ChunkEval) -> list[str]:
    return [series_group(s) for s in chunk.block.series_ids]


def _pools(evaluated: Sequence[ChunkEval | None], early: bool) -> dict[str, np.ndarray]:
    """Every chunk's pooled rows' normalized residuals, per group."""
    pools: dict[str, list[np.ndarray]] = {}
    for chunk in evaluated:
        if chunk is None:
            continue
        residuals = chunk.residuals_early if early else chunk.residuals
        groups = np.array(_groups(chunk))
        for group in np.unique(groups[chunk.pooled]):
            rows = chunk.pooled & (groups == group)
            pools.setdefault(str(group), []).append(residuals[rows].ravel())
    return {g: np.concatenate(parts) for g, parts in pools.items()}


def _pooled_quantiles(
    evaluated: Sequence[ChunkEval | None], interval: float, early: bool
) -> dict[str, tuple[float, float]]:
    """Conformal quantiles per group over every chunk's pooled rows."""
    return group_quantiles(_pools(evaluated, early), interval)


SlowTask = tuple[tuple[int, int], np.ndarray, int, list[int]]  # (chunk, row), filled, start, cuts


def _slow_order(
    evaluated: Sequence[ChunkEval | None], settings: ForecastPolicy, limits: Mapping[str, Limit]
) -> list[SlowTask]:
    """Every series the slow models may run on (backtested, not constant), riskiest first."""
    if not settings.slow_models or settings.slow_budget_seconds <= 0:
        return []
    quantiles = _pooled_quantiles(evaluated, settings.interval, early=False)
    ids, scores, tasks = [], [], {}
    for index, chunk in enumerate(evaluated):
        if chunk is None:
            continue
        lower, upper = bounds(chunk, quantiles, _groups(chunk), settings.interval)
        mase = nanmean(chunk.mase_chosen, axis=1)
        risk = risk_of(
            chunk.block,
            lower,
            upper,
            mase,
            dict(limits),
            settings.horizon_hours,
            settings.capacity_share,
        ).score
        filled = chunk.block.filled
        for row in np.flatnonzero(chunk.pooled):
            series_id = chunk.block.series_ids[row]
            ids.append(series_id)
            scores.append(risk[row])
            tasks[series_id] = (
                (index, int(row)),
                filled[row],
                int(chunk.block.start_hours[row]),
                chunk.cutoffs,
            )
    return [tasks[s] for s in priority_order(ids, np.array(scores))]


SlowFits = dict[tuple[int, int], dict[str, np.ndarray]]


def _slow_tasks(tasks: Sequence[SlowTask], models: Sequence[str], horizon: int) -> SlowFits:
    return {
        key: slow_backtest(models, filled, start, cutoffs, horizon)
        for key, filled, start, cutoffs in tasks
    }


def _run_slow(
    order: Sequence[SlowTask],
    settings: ForecastPolicy,
    processes: int | None,
    on_progress: ProgressCallback,
) -> SlowFits:
    """The slow models' backtests of the series in `order`, as many as the budget allows: no
    series starts after the deadline (those running then finish)."""
    if not order:
        return {}
    deadline = time.monotonic() + settings.slow_budget_seconds
    models, horizon, total = settings.slow_models, settings.horizon_hours, len(order)
    if processes is None:
        processes = (os.cpu_count() or 1) if total >= MIN_SERIES_FOR_PROCESSES else 1
    results: SlowFits = {}
    queue = iter(order)
    if processes == 1:
        for task in queue:
            if time.monotonic() >= deadline:
                break
            results.update(_slow_tasks([task], models, horizon))
            on_progress(len(results), total)
        return results
    spawn = multiprocessing.get_context("spawn")  # fork is unsafe under threaded callers
    with ProcessPoolExecutor(max_workers=processes, mp_context=spawn) as pool:

        def submit() -> None:
            task = next(queue, None)
            if task is not None and time.monotonic() < deadline:
                pending.add(pool.submit(_slow_tasks, [task], models, horizon))

        pending: set = set()
        for _ in range(processes):  # one series per worker in flight bounds the overrun
            submit()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                results.update(future.result())
                on_progress(len(results), total)
                submit()
    return results


def _tables(
    chunks: Sequence[SeriesBlock],
    evaluated: Sequence[ChunkEval | None],
    settings: ForecastPolicy,
    limits: Mapping[str, Limit],
    trained_at: datetime,
) -> ForecastResult:
    pools = _pools(evaluated, early=False)
    quantiles = group_quantiles(pools, settings.interval)
    group_spread = per_group(pools, lambda pool: float(root_mean_square(pool, axis=0)))
    early = _pooled_quantiles(evaluated, settings.interval, early=True)
    parts = []
    for block, chunk in zip(chunks, evaluated, strict=True):
        fingerprints = block_fingerprints(block, settings, limits)
        if chunk is None:
            parts.append(ChunkTables(block, None, fingerprints))
            continue
        groups = _groups(chunk)
        parts.append(
            ChunkTables(
                block,
                chunk,
                fingerprints,
                bounds=bounds(chunk, quantiles, groups, settings.interval),
                coverage=held_out_coverage(chunk, early, groups, settings.interval),
                offsets=row_offsets(chunk, quantiles, groups, settings.interval),
                spread=spreads(chunk, group_spread, groups),
            )
        )
    return result_tables(parts, settings, trained_at)
