"""Reading at any time: while another process writes the DuckDB file (holding it like dbt or an
ingestion does) and migrations write state, readers get a consistent snapshot every time, with
no lock error, on both state backends; `skyshard sql` reads the same way and shows the age."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from skyshard.broker.ops_tables import OpsStore, ops_mirror
from skyshard.plans.statuses import PlanStatuses
from skyshard.plans.store import ensure_plan_schema
from skyshard.storage.snapshots import (
    KEEP,
    REFRESH_S,
    current_snapshot,
    publish,
    read_snapshot,
    snapshot_dir,
)
from tests.support.busy_writer import MOVE, prepare

ROOT = Path(__file__).resolve().parents[2]
WRITE_SECONDS = 8.0


def _writer(database: str, seconds: float, hold_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.busy_writer", database, str(seconds), str(hold_s)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_readers_during_writes_never_fail_and_see_whole_transactions(state_backend: str) -> None:
    database = os.environ["SKYSHARD_DUCKDB"]
    prepare(database)
    mirror = ops_mirror(database)
    publish(database)
    writer = _writer(database, WRITE_SECONDS, hold_s=0.2)
    reads, failures, batches_seen, steps_seen = 0, [], [], []
    deadline = time.monotonic() + WRITE_SECONDS
    while time.monotonic() < deadline:
        try:
            with read_snapshot(database, mirror) as (con, _):
                a, b = con.execute(
                    "SELECT (SELECT count(*) FROM load.a), (SELECT count(*) FROM load.b)"
                ).fetchone()
                (steps,) = con.execute(
                    "SELECT count(*) FROM ops.migration_steps WHERE move_id = ?", [MOVE]
                ).fetchone()
            assert a == b, f"snapshot holds half a transaction: {a} rows in a, {b} in b"
            batches_seen.append(a // 100)
            steps_seen.append(steps)
            reads += 1
        except duckdb.Error as error:
            failures.append(repr(error))
        time.sleep(0.05)
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert failures == []
    assert reads > 20
    assert batches_seen == sorted(batches_seen) and steps_seen == sorted(steps_seen)
    assert int(out) >= 5 and batches_seen[-1] >= 2  # the readers saw the writer progress
    assert steps_seen[-1] >= 1  # the state writes reach the snapshot (mirrored from Postgres)
    assert len(list(snapshot_dir(database).glob("*.duckdb"))) <= KEEP


def test_skyshard_sql_reads_while_a_writer_holds_the_file(state_backend: str) -> None:
    database = os.environ["SKYSHARD_DUCKDB"]
    prepare(database)
    publish(database)
    writer = _writer(database, 4.0, hold_s=1.5)  # holds the file most of the time
    time.sleep(1.0)
    skyshard = Path(sys.executable).with_name("skyshard")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    query = "select count(*) = (select count(*) from load.b) as whole from load.a"
    for _ in range(3):
        result = subprocess.run(
            [str(skyshard), "sql", query, "--format", "csv"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["whole", "True"]
        assert "read snapshot of" in result.stderr and "s old" in result.stderr
    writer.communicate(timeout=60)
    assert writer.returncode == 0


def test_a_reader_refreshes_a_stale_snapshot_when_no_writer_holds_the_file(state_backend) -> None:
    database = os.environ["SKYSHARD_DUCKDB"]
    prepare(database)
    first = publish(database)
    with duckdb.connect(database) as con:
        con.execute("INSERT INTO load.a VALUES (1, now())")
    with read_snapshot(database, ops_mirror(database)) as (con, snapshot):
        assert snapshot == first  # too young to be worth a copy
        assert con.execute("SELECT count(*) FROM load.a").fetchone() == (0,)
    time.sleep(REFRESH_S + 0.1)
    with read_snapshot(database, ops_mirror(database)) as (con, snapshot):
        assert con.execute("SELECT count(*) FROM load.a").fetchone() == (1,)
    assert snapshot.published_at > first.published_at
    assert current_snapshot(database) == snapshot
    # Nothing changed since: the same snapshot is read again (embedded state, no mirror).
    if state_backend == "duckdb":
        with read_snapshot(database) as (_, again):
            assert again == snapshot


def test_readers_see_the_state_backend_s_ops_tables_not_the_file_s(monkeypatch, postgres_dsn):
    """After switching to Postgres, the file's old `ops` rows are hidden and Postgres' shown."""
    database = os.environ["SKYSHARD_DUCKDB"]
    monkeypatch.delenv("SKYSHARD_STATE_URL", raising=False)
    OpsStore(database).register_route("kv-1", "host-old", "10.0.0.1", 8700)
    monkeypatch.setenv("SKYSHARD_STATE_URL", postgres_dsn)
    OpsStore(database).register_route("kv-1", "host-new", "10.0.0.2", 8700)
    with duckdb.connect(database) as con:
        ensure_plan_schema(con, PlanStatuses(database))
    publish(database)
    with read_snapshot(database, ops_mirror(database)) as (con, _):
        assert con.execute("SELECT host_id FROM ops.routing").fetchall() == [("host-new",)]
        # The snapshot's own tables and views stay visible under their names.
        assert con.execute("SELECT count(*) FROM plan.current_plan").fetchone() == (0,)
