"""Orchestration overhead of the planning cycle: run wall time over the sum of its steps' own
time, with the in-process executor (the job's default) and with one process per step.

Usage: .venv/bin/python bench/bench_cycle_overhead.py [SHARDS [EXECUTOR ...]]
(default: 48 shards, the demo's size; both executors)
Each executor runs the `planning_cycle` job through `dagster job execute` on a fresh DuckDB file
and Dagster home; times come from the run's event log (run start to end, step start to end)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXECUTORS = {"in_process": "{}", "multiprocess": "{max_concurrent: 2}"}


def measure(home: Path, work: Path, executor: str) -> tuple[float, float, int]:
    """(run wall seconds, sum of step seconds, steps) of one planning cycle."""
    import dagster as dg

    dagster_home = work / f"dagster_{executor}"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((ROOT / "orchestration/dagster.yaml").read_text())
    config = work / f"{executor}.yaml"
    config.write_text(f"execution:\n  config:\n    {executor}: {EXECUTORS[executor]}\n")
    env = {
        **os.environ,
        "SKYSHARD_HOME": str(home),
        "SKYSHARD_DUCKDB": str(work / f"{executor}.duckdb"),
        "SKYSHARD_LEDGER_DIR": str(work / f"ledger_{executor}"),
        "DAGSTER_HOME": str(dagster_home),
        "PYTHONPATH": str(ROOT),
    }
    command = [
        str(Path(sys.executable).with_name("dagster")),
        *("job", "execute", "-m", "orchestration.definitions", "-j", "planning_cycle"),
        *("-c", str(config)),
    ]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
        stats = instance.get_run_stats(run.run_id)
        steps = instance.get_run_step_stats(run.run_id)
    own = sum(s.end_time - s.start_time for s in steps if s.end_time and s.start_time)
    return stats.end_time - stats.start_time, own, len(steps)


def main(shards: int, executors: list[str]) -> None:
    from skyshard.sim import SkyParams, write_sky

    work = Path(tempfile.mkdtemp(prefix="bench_overhead_"))
    home = work / "sky"
    write_sky(SkyParams(shards=shards), home)
    print(f"planning_cycle on a simulated sky of {shards} shards ({work})")
    for executor in executors:
        wall, own, steps = measure(home, work, executor)
        print(
            f"  {executor:<12} wall {wall:6.1f} s, steps' own time {own:6.1f} s "
            f"({steps} steps), ratio {wall / own:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 48, sys.argv[2:] or list(EXECUTORS))
