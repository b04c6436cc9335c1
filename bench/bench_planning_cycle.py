"""Whole planning cycle on a simulated sky: ingestion -> dbt build -> forecasts -> plan.

Usage: .venv/bin/python bench/bench_planning_cycle.py [SHARDS ...]   (default 1000)
Prints the seconds of each stage (and the forecast's own stages). Hosts scale with shards (one
host per 5 shards, 12 providers at most); forecasting follows policy.yaml's defaults,
including the slow models' time budget `forecast.slow_budget_seconds`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stage(name: str, started: float) -> float:
    now = time.perf_counter()
    print(f"  {name:<12} {now - started:8.1f} s", flush=True)
    return now


def run(shards: int) -> None:
    from skyshard import db
    from skyshard.config import load_sky
    from skyshard.forecast import forecast_series
    from skyshard.plans import PlanStatuses, plan_cycle, write_plan
    from skyshard.scoring import forecast_input, forecast_limits, load_planning_data
    from skyshard.scoring.trust_inputs import neutral_trust_scores
    from skyshard.sim import SkyParams, write_sky

    work = Path(tempfile.mkdtemp(prefix="bench_plan_"))
    home, duck = work / "home", work / "sky.duckdb"
    providers = min(12, max(2, shards // 100))
    # About 5 shards per host, at most ~200 hosts (the 10,000 x 200 placement size).
    hosts = max(2, min(shards // (5 * providers), 200 // providers))
    print(f"{shards} shards, {providers} providers x {hosts} hosts, 14 days at 5-minute resolution")
    t0 = t = time.perf_counter()
    write_sky(SkyParams(providers=providers, hosts_per_provider=hosts, shards=shards), home)
    t = stage("simulate", t)
    env = {**os.environ, "SKYSHARD_HOME": str(home), "SKYSHARD_DUCKDB": str(duck)}
    subprocess.run(
        [ROOT / ".venv/bin/skyshard", "ingest"], env=env, check=True, stdout=subprocess.DEVNULL
    )
    t = stage("ingest", t)
    subprocess.run(
        [
            ROOT / ".venv/bin/dbt",
            "build",
            "--profiles-dir",
            ".",
            "--target-path",
            str(work / "target"),
        ],
        cwd=ROOT / "dbt_project",
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    t = stage("dbt build", t)
    sky = load_sky(home)
    with db.connect(duck) as con:
        data = load_planning_data(con)
    frame = forecast_input(data)
    result = forecast_series(
        frame,
        sky.policy.forecast,
        limits=forecast_limits(data),
        on_stage=lambda message: print(f"    {message}", flush=True),
    )
    t = stage(f"forecast ({result.summary.height} series)", t)
    trust = neutral_trust_scores(data.providers["provider_id"], sky.policy.trust.neutral_score)
    cycle = plan_cycle(data, result.forecasts, sky.policy, trust)
    with db.connect(duck) as con:
        write_plan(con, PlanStatuses(duck), cycle.run, cycle.plan)
    t = stage("plan", t)
    print(
        f"  total        {t - t0:8.1f} s; solver {cycle.result.status}, "
        f"{len(cycle.plan)} moves, {cycle.bottlenecks.height} bottlenecks"
    )


if __name__ == "__main__":
    for n in [int(a) for a in sys.argv[1:]] or [1000]:
        run(n)
