"""The whole planning cycle of a simulated 10,000-shard sky as the scale-out location runs it,
on 1 and on 2 worker processes: ingestion per feed and forecasts per shard group side by side,
dbt and planning once in between, all into one DuckDB file.

Run: .venv/bin/python bench/bench_workers.py [--shards 10000] [--days 14] [--workers 1 2]
       [--groups 8] [--seed 7]

Per worker count, on a fresh copy of the DuckDB file holding only the configured sky:
1. ingest: one task per feed (the `ingest_feeds` partitions): `ingest_all(feeds=[feed])`
   fetches and parses with no connection open, then writes in one transaction;
2. dbt build (`build_features`, one process);
3. forecast: one task per shard group (the `forecast_groups` partitions), each doing what the
   partitioned asset does: read the marts, forecast its group's series (cheap candidates only:
   the slow models have a wall-clock budget per call, which would make the figure a function of
   the budget, not of the workers), then merge its group into `forecast.*` (`write_refit`) in
   one transaction, waiting for another writer's lock (`skyshard.db.connect`);
4. plan (`plan_from_forecasts`, one process): score, solve and store the plan.
Reported: wall time per stage and in all, the speedup over 1 worker, and per partitioned stage
the longest task and the longest lock wait. Worker start-up (spawned interpreters) is included.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from skyshard import db
from skyshard.config import load_sky
from skyshard.config.policy import ForecastPolicy
from skyshard.config.sky_tables import sky_frames
from skyshard.forecast import forecast_series, group_keys, input_fingerprints, series_in_group
from skyshard.forecast.store import write_refit
from skyshard.plans import PlanStatuses, plan_cycle, write_plan
from skyshard.scoring import forecast_input, forecast_limits, load_planning_data
from skyshard.scoring.trust_inputs import neutral_trust_scores
from skyshard.sim import SkyParams, write_sky
from skyshard.sources import ingest
from skyshard.sources.base import Window

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ForecastPolicy(slow_models=())


@dataclass(frozen=True)
class TaskTiming:
    """One partition: its whole time, and how long it waited for the file's writer lock."""

    key: str
    seconds: float
    lock_wait_s: float


def ingest_feed(home: Path, database: Path, feed: str, window: Window) -> TaskTiming:
    """One `ingest_feeds` partition (the write waits for the lock inside `ingest_all`)."""
    started = time.perf_counter()
    (outcome,) = ingest.ingest_all(load_sky(home), window, database, feeds=[feed])
    if not outcome.ok:
        raise RuntimeError(f"feed {feed}: {outcome.error}")
    return TaskTiming(feed, time.perf_counter() - started, 0.0)


def forecast_group(database: Path, group: str, groups: int) -> TaskTiming:
    """One `forecast_groups` partition: compute with no connection open, then one write."""
    started = time.perf_counter()
    with db.connect(database, read_only=True) as con:
        data = load_planning_data(con)
    frame = forecast_input(data)
    limits = forecast_limits(data)
    current = input_fingerprints(frame, SETTINGS, limits)
    refit = series_in_group(current, group, groups)
    result = forecast_series(frame.filter(frame["series_id"].is_in(refit)), SETTINGS, limits=limits)
    computed = time.perf_counter()
    with db.connect(database) as con:
        opened = time.perf_counter()
        write_refit(con, result, current, refit)
    return TaskTiming(group, time.perf_counter() - started, opened - computed)


def dbt_build(database: Path, work: Path) -> None:
    subprocess.run(
        [ROOT / ".venv/bin/dbt", "build", "--profiles-dir", ".", "--target-path",
         str(work / "target"), "--quiet"],
        cwd=ROOT / "dbt_project",
        env={**os.environ, "SKYSHARD_DUCKDB": str(database)},
        check=True,
    )  # fmt: skip


def plan(home: Path, database: Path) -> int:
    """Score, solve and store the plan from the stored forecasts; the moves proposed."""
    policy = load_sky(home).policy
    with db.connect(database) as con:
        data = load_planning_data(con)
        forecasts = con.sql("select * from forecast.forecasts").pl()
    trust = neutral_trust_scores(data.providers["provider_id"], policy.trust.neutral_score)
    cycle = plan_cycle(data, forecasts, policy, trust)
    with db.connect(database) as con:
        write_plan(con, PlanStatuses(database), cycle.run, cycle.plan)
    return cycle.plan.height


def in_pool(workers: int, task: Callable[..., TaskTiming], calls: list[tuple]) -> list[TaskTiming]:
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        return [future.result() for future in [pool.submit(task, *call) for call in calls]]


def run_cycle(
    home: Path, seeded: Path, work: Path, window: Window, workers: int, groups: int
) -> dict[str, float]:
    """The four stages on a copy of `seeded`; seconds per stage (and partition details)."""
    database = work / f"cycle-{workers}.duckdb"
    shutil.copyfile(seeded, database)
    feeds = [source.id for _, source in ingest.sources_of(load_sky(home).providers)]
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    ingested = in_pool(workers, ingest_feed, [(home, database, f, window) for f in feeds])
    seconds["ingest"] = time.perf_counter() - started
    seconds["ingest longest feed"] = max(t.seconds for t in ingested)
    mark = time.perf_counter()
    dbt_build(database, work)
    seconds["dbt build"] = time.perf_counter() - mark
    mark = time.perf_counter()
    forecast = in_pool(workers, forecast_group, [(database, g, groups) for g in group_keys(groups)])
    seconds["forecast"] = time.perf_counter() - mark
    seconds["forecast longest group"] = max(t.seconds for t in forecast)
    seconds["forecast lock wait max"] = max(t.lock_wait_s for t in forecast)
    mark = time.perf_counter()
    moves = plan(home, database)
    seconds["plan"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    seconds["moves"] = moves
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        home, seeded = work / "home", work / "seeded.duckdb"
        providers = 12
        params = SkyParams(
            providers=providers,
            hosts_per_provider=max(2, min(args.shards // (5 * providers), 200 // providers)),
            shards=args.shards,
            days=args.days,
            seed=args.seed,
        )
        write_sky(params, home)
        sky = load_sky(home)
        with db.connect(seeded) as con:
            for name, frame in sky_frames(sky, {}).items():
                db.replace_table(con, f"raw.{name}", frame)
        window = Window(start=params.end - timedelta(days=args.days), end=params.end)
        feeds = len(ingest.sources_of(sky.providers))
        print(f"{args.shards:,} shards, {len(sky.hosts)} hosts, {feeds} feeds, {args.days} days "
              f"at {params.step_minutes} min, {args.groups} shard groups", flush=True)  # fmt: skip
        baseline = None
        for workers in args.workers:
            seconds = run_cycle(home, seeded, work, window, workers, args.groups)
            baseline = baseline or seconds["total"]
            stages = ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items()
                               if name not in ("total", "moves"))  # fmt: skip
            print(f"{workers} worker(s): {seconds['total']:.1f} s in all, speedup "
                  f"{baseline / seconds['total']:.2f}x ({stages}; {seconds['moves']:.0f} moves)",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
