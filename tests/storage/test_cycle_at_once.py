"""Planning, ingestion and migrations at once, at the storage level: a planning process
(plan runs, approvals), an ingestion process (table replacements) and ten migration processes
(state writes on the configured state_backend) run together, and a reader reads throughout; every
process finishes without a lock error and every write is there afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from skyshard.broker.ops_tables import OpsStore, ops_mirror
from skyshard.storage.snapshots import publish, read_snapshot
from tests.support.cycle_load import MOVES_PER_RUN
from tests.support.state_load import move_id_of, run_concurrent_moves

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 5


def _read_until(database: str, finished: Callable[[], bool]) -> list[str]:
    """Read the latest snapshot every 0.1 s until `finished`; the errors seen."""
    failures = []
    while not finished():
        try:
            with read_snapshot(database, ops_mirror(database)) as (con, _):
                con.execute("SELECT count(*) FROM information_schema.tables").fetchall()
        except duckdb.Error as error:
            failures.append(repr(error))
        time.sleep(0.1)
    return failures


def test_planning_ingestion_and_migrations_write_at_once(state_backend: str) -> None:
    database = os.environ["SKYSHARD_DUCKDB"]
    with duckdb.connect(database) as con:
        con.execute("CREATE SCHEMA raw")
    publish(database)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.support.cycle_load"]
    writers = {
        role: subprocess.Popen(
            [*command, role, database, str(ROUNDS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in ("plan", "ingest")
    }
    shards = [f"kv-m{index}" for index in range(10)]
    state_env = {key: value for key, value in env.items() if key.startswith("SKYSHARD_")}
    with ThreadPoolExecutor(1) as pool:
        migrating = pool.submit(run_concurrent_moves, database, shards, state_env)

        def finished() -> bool:
            return migrating.done() and all(w.poll() is not None for w in writers.values())

        failures = _read_until(database, finished)
        moves = migrating.result()
    for role, writer in writers.items():
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, f"{role}: {err}"
        assert int(out) == ROUNDS
    assert moves.errors == [] and failures == []
    publish(database)
    with read_snapshot(database, ops_mirror(database)) as (con, _):
        assert con.execute("SELECT count(*) FROM plan.migration_plan").fetchone() == (
            ROUNDS * MOVES_PER_RUN,
        )
        # Each run superseded the previous run's moves it did not approve.
        assert con.execute(
            "SELECT to_status, count(*) FROM plan.decisions GROUP BY ALL ORDER BY 1"
        ).fetchall() == [("approved", ROUNDS), ("rejected", (ROUNDS - 1) * (MOVES_PER_RUN - 1))]
        assert con.execute("SELECT max(round) FROM raw.load_shards").fetchone() == (ROUNDS - 1,)
    ops = OpsStore(database)
    assert {ops.migration(move_id_of(shard)).status for shard in shards} == {"done"}
