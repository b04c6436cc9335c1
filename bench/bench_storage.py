"""Storage under concurrency (issue 14), on both operational-state backends.

Usage: PYTHONPATH=$PWD .venv/bin/python bench/bench_storage.py [MIGRATIONS [ROUNDS [BACKENDS]]]
(defaults 20, 5 and `duckdb,postgres`). Starts its own throwaway Postgres
(tests/support/postgres.py). For each backend (the embedded DuckDB file, then Postgres):

1. state transactions per second: MIGRATIONS processes, each one move's state transitions
   through the broker's own lease and ops-store calls (tests/support/state_load.py), released at
   the same instant; transactions (reads included) / the slowest process's wall time;
2. read latency during a cycle (storage level): a planning process (ROUNDS plan runs of 50
   moves, an approval each), an ingestion process (ROUNDS replacements of a 10,000-row table)
   and 10 migration processes write at once, while this process runs `SELECT count(*) FROM
   plan.migration_plan` on the latest read snapshot every 0.1 s; p50 / p95 / max of the whole
   read (snapshot refresh if due + open + query), and the snapshot's age when read.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from skyshard.broker.ops_tables import ops_mirror  # noqa: E402
from skyshard.storage.snapshots import publish, read_snapshot  # noqa: E402
from skyshard.storage.state import STATE_URL_ENV  # noqa: E402
from tests.support.postgres import running_postgres  # noqa: E402
from tests.support.state_load import run_concurrent_moves  # noqa: E402


@contextmanager
def backend_env(name: str, server_dsn: str | None) -> Iterator[dict[str, str]]:
    work = Path(tempfile.mkdtemp(prefix=f"bench_storage_{name}_"))
    env = {"SKYSHARD_DUCKDB": str(work / "skyshard.duckdb")}
    if server_dsn:
        env[STATE_URL_ENV] = server_dsn
    saved = {key: os.environ.get(key) for key in (*env, STATE_URL_ENV)}
    os.environ.pop(STATE_URL_ENV, None)
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def state_writes(env: dict[str, str], migrations: int) -> str:
    shards = [f"kv-{index}" for index in range(migrations)]
    result = run_concurrent_moves(env["SKYSHARD_DUCKDB"], shards, env, timeout=900)
    return (
        f"{result.writes} state transactions from {migrations} processes in "
        f"{result.seconds:.1f} s: **{result.writes_per_second:.0f}/s**, errors {len(result.errors)}"
    )


def read_latency(env: dict[str, str], rounds: int) -> str:
    database = env["SKYSHARD_DUCKDB"]
    with duckdb.connect(database) as con:
        con.execute("CREATE SCHEMA raw")
    mirror = ops_mirror(database)
    publish(database)
    child_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.cycle_load", role, database, str(rounds)],
            env=child_env,
            stdout=subprocess.DEVNULL,
        )
        for role in ("plan", "ingest")
    ]
    movers = subprocess.Popen(
        [sys.executable, "-c", "import sys; from tests.support.state_load import "
         "run_concurrent_moves as r; res = r(sys.argv[1], [f'kv-m{i}' for i in range(10)], {}); "
         "sys.exit(len(res.errors))", database],
        env=child_env,
    )  # fmt: skip
    latencies, ages, failures = [], [], 0
    while any(p.poll() is None for p in (*writers, movers)):
        started = time.perf_counter()
        try:
            with read_snapshot(database, mirror) as (con, snapshot):
                con.execute("SELECT count(*) FROM plan.migration_plan").fetchall()
        except duckdb.CatalogException:
            continue  # before the first plan run lands in a snapshot
        except duckdb.Error:
            failures += 1
            continue
        latencies.append(time.perf_counter() - started)
        ages.append(snapshot.age_s())
        time.sleep(0.1)
    bad = [p.returncode for p in (*writers, movers) if p.returncode]
    if len(latencies) < 2:
        return f"only {len(latencies)} read(s) during the cycle; run more ROUNDS"
    cuts = statistics.quantiles(latencies, n=20, method="inclusive")
    return (
        f"{len(latencies)} reads during the cycle: p50 {statistics.median(latencies) * 1e3:.0f} "
        f"ms, **p95 {cuts[18] * 1e3:.0f} ms**, max {max(latencies) * 1e3:.0f} ms; snapshot age "
        f"p50 {statistics.median(ages):.1f} s, max {max(ages):.1f} s; read failures {failures}; "
        f"writer exit codes {bad or 'all 0'}"
    )


def main(migrations: int = 20, rounds: int = 5, backends: str = "duckdb,postgres") -> None:
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    with running_postgres() as server:
        for name in backends.split(","):
            dsn = server.create_database() if name == "postgres" else None
            with backend_env(name, dsn) as env:
                print(f"[{name}] state writes: {state_writes(env, migrations)}", flush=True)
            dsn = server.create_database() if name == "postgres" else None
            with backend_env(name, dsn) as env:
                print(f"[{name}] read latency: {read_latency(env, rounds)}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]), *sys.argv[3:4])
