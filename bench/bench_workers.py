"""The forecast step of a 10,000-shard planning cycle split into shard groups (the scale-out
location's `forecast_groups` partitions), computed by 1 and by 2 worker processes that each
write their group into one DuckDB file in one short transaction.

Run: .venv/bin/python bench/bench_workers.py [--shards 10000] [--days 14] [--workers 1 2]
       [--groups 8] [--seed 7]

Each worker process does what one partition run does: read the input, forecast the series of
its group (`forecast_series`, cheap candidates only: the slow models have a wall-clock budget
per call, which would make the figure a function of the budget, not of the workers), then open
the DuckDB file (waiting for another writer's lock, `skyshard.db.connect`) and merge its group
into `forecast.*` with `write_refit` in one transaction. Reported: wall time of the whole step,
speedup over 1 worker, and per group the compute time, the lock wait and the write time.
Input: the simulator's shard demand × 3 and host free × 3 series (bench_forecast.sim_frames).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from bench_forecast import sim_frames

from skyshard import db
from skyshard.config.policy import ForecastPolicy
from skyshard.forecast import forecast_series, group_keys, input_fingerprints, series_in_group
from skyshard.forecast.store import write_refit

SETTINGS = ForecastPolicy(slow_models=())


@dataclass(frozen=True)
class GroupTiming:
    group: str
    series: int
    compute_s: float
    lock_wait_s: float
    write_s: float


def forecast_group(
    inputs: Path, database: Path, group: str, current: dict[str, str], groups: int
) -> GroupTiming:
    """One partition: compute with no connection open, then one short write."""
    started = time.perf_counter()
    frame = pl.read_parquet(inputs / "frame.parquet")
    limits = pl.read_parquet(inputs / "limits.parquet")
    refit = series_in_group(current, group, groups)
    frame = frame.filter(pl.col("series_id").is_in(refit))
    result = forecast_series(frame, SETTINGS, limits=limits)
    computed = time.perf_counter()
    with db.connect(database) as con:
        opened = time.perf_counter()
        write_refit(con, result, current, refit)
    written = time.perf_counter()
    return GroupTiming(group, len(refit), computed - started, opened - computed, written - opened)


def run_step(
    inputs: Path, database: Path, current: dict[str, str], workers: int, groups: int
) -> tuple[float, list[GroupTiming]]:
    database.unlink(missing_ok=True)
    started = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        futures = [
            pool.submit(forecast_group, inputs, database, group, current, groups)
            for group in group_keys(groups)
        ]
        timings = [future.result() for future in futures]
    wall = time.perf_counter() - started
    with db.connect(database, read_only=True) as con:
        stored = db.scalar(con, "select count(distinct series_id) from forecast.summary")
    if stored != len(current):
        raise RuntimeError(f"{database}: {stored} series stored, expected {len(current)}")
    return wall, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder)
        frame, limits = sim_frames(args.shards, args.days, args.seed)
        frame.write_parquet(inputs / "frame.parquet")
        limits.write_parquet(inputs / "limits.parquet")
        current = input_fingerprints(frame, SETTINGS, limits)
        del frame
        print(f"{args.shards:,} shards, {len(current):,} series, {args.groups} groups")
        baseline = None
        for workers in args.workers:
            wall, timings = run_step(
                inputs, inputs / "skyshard.duckdb", current, workers, args.groups
            )
            baseline = baseline or wall
            waits = [t.lock_wait_s for t in timings]
            writes = [t.write_s for t in timings]
            print(
                f"{workers} worker(s): {wall:.1f} s wall, speedup {baseline / wall:.2f}x; "
                f"per group compute {min(t.compute_s for t in timings):.1f}-"
                f"{max(t.compute_s for t in timings):.1f} s, write {min(writes):.2f}-"
                f"{max(writes):.2f} s, lock wait max {max(waits):.2f} s (total {sum(waits):.2f} s)"
            )


if __name__ == "__main__":
    main()
