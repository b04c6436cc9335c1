"""Plan statuses and decisions on the state backend (`ops.plan_moves`, `ops.plan_decisions`):
racing deciders get exactly one change, approvals and the migration sensor need no analytics
file with Postgres, and a file from before the move hands its statuses over."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from sensors.migrations import approved_moves
from skyshard.plans import PLAN_SCHEMA, MoveStatus, PlanError, PlanStatuses
from skyshard.plans.store import ensure_plan_schema, list_moves

AT = datetime(2026, 12, 1, 1, 0)
RACERS = 8


def planned(count: int, run_id: str = "run-1", status: str = "proposed") -> pl.DataFrame:
    moves = [
        {**dict.fromkeys(PLAN_SCHEMA), "move_id": f"mv-{index:016x}", "plan_run_id": run_id,
         "created_at": AT, "shard_id": f"kv-{index}", "from_host_id": "host-a",
         "from_provider_id": "prov-a", "to_host_id": "host-b", "to_provider_id": "prov-b",
         "reason": "cost", "saving_per_day": 1.0, "risk": 0.1, "status": status,
         "approval_mode": "manual"}
        for index in range(count)
    ]  # fmt: skip
    return pl.DataFrame(moves, schema=PLAN_SCHEMA)


def race(work, count: int = RACERS) -> list[object]:
    """`work()` from `count` threads released at once; each result or exception."""
    start = threading.Barrier(count)

    def one() -> object:
        start.wait()
        try:
            return work()
        except PlanError as error:
            return error

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: one(), range(count)))


def test_racing_deciders_make_exactly_one_change(state_backend: str) -> None:
    statuses = PlanStatuses(os.environ["SKYSHARD_DUCKDB"])
    plan = planned(2)
    assert statuses.register(plan, "run-1") == 2
    approve, reject = plan["move_id"]
    results = race(lambda: statuses.decide(approve, MoveStatus.APPROVED, "alice"))
    won = [r for r in results if isinstance(r, dict)]
    assert len(won) == 1 and won[0]["status"] == "approved"
    assert all("cannot go from 'approved' to 'approved'" in str(r) for r in results if r not in won)
    # Brokers racing to start the approved move: one marks it running.
    started = race(lambda: statuses.decide(approve, MoveStatus.RUNNING, "broker"))
    assert sum(isinstance(r, dict) for r in started) == 1
    # Approve and reject at once: exactly one of them happens, and the log says which.
    mixed = race(
        lambda: statuses.decide(
            reject,
            MoveStatus.APPROVED if threading.get_ident() % 2 else MoveStatus.REJECTED,
            "bob",
        )
    )
    assert sum(isinstance(r, dict) for r in mixed) == 1
    assert [d["to_status"] for d in statuses.decisions(approve)] == ["approved", "running"]
    (decision,) = statuses.decisions(reject)
    assert decision["to_status"] == statuses.move(reject)["status"]
    assert [d["seq"] for d in statuses.decisions(approve)] == [1, 2]


def test_a_registered_plan_keeps_decided_moves_and_supersedes_stale_ones(
    state_backend: str,
) -> None:
    statuses = PlanStatuses(os.environ["SKYSHARD_DUCKDB"])
    first = planned(3)
    statuses.register(first, "run-1")
    statuses.decide(first["move_id"][0], MoveStatus.APPROVED, "alice")
    # The next run proposes only the second move again (and the first, as planned then).
    again = first.slice(0, 2).with_columns(pl.lit("run-2").alias("plan_run_id"))
    assert statuses.register(again, "run-2") == 0
    assert [statuses.move(m)["status"] for m in first["move_id"]] == [
        "approved", "proposed", "rejected",
    ]  # fmt: skip
    assert statuses.move(first["move_id"][2])["decision_note"] == "superseded by plan run run-2"


def test_with_postgres_approvals_and_the_sensor_never_open_the_analytics_file(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SKYSHARD_STATE_URL", postgres_dsn)
    database = tmp_path / "elsewhere" / "skyshard.duckdb"  # another machine's file
    statuses = PlanStatuses(database)
    statuses.register(planned(2, status="approved"), "run-1")
    statuses.decide("mv-0000000000000001", MoveStatus.REJECTED, "carol")
    assert approved_moves(str(database)) == [("mv-0000000000000000", "prov-a", "prov-b")]
    assert not database.parent.exists()


def test_a_file_from_before_hands_over_its_statuses_and_decisions(state_backend: str) -> None:
    database = os.environ["SKYSHARD_DUCKDB"]
    old = planned(2).with_columns(
        pl.Series("status", ["approved", "proposed"]),
        pl.Series("approved_by", ["alice", None]),
    )
    with duckdb.connect(database) as con:
        con.execute("CREATE SCHEMA plan")
        con.register("_old", old.to_arrow())
        con.execute("CREATE TABLE plan.migration_plan AS SELECT * FROM _old")
        con.execute(
            "CREATE TABLE plan.decisions (move_id VARCHAR, from_status VARCHAR, "
            "to_status VARCHAR, decided_by VARCHAR, note VARCHAR, decided_at TIMESTAMP)"
        )
        con.execute(
            "INSERT INTO plan.decisions VALUES (?, 'proposed', 'approved', 'alice', 'ok', ?)",
            ["mv-0000000000000000", AT],
        )
    statuses = PlanStatuses(database)
    with duckdb.connect(database) as con:
        ensure_plan_schema(con, statuses)
        moves = list_moves(con, statuses)
        assert con.execute("SELECT count(*) FROM plan.proposed_moves").fetchone() == (2,)
    assert sorted(moves.select("move_id", "status", "approved_by").rows()) == [
        ("mv-0000000000000000", "approved", "alice"),
        ("mv-0000000000000001", "proposed", None),
    ]
    assert [d["decided_by"] for d in statuses.decisions("mv-0000000000000000")] == ["alice"]
    statuses.decide("mv-0000000000000001", MoveStatus.APPROVED, "bob")
    assert [d["seq"] for d in statuses.decisions("mv-0000000000000001")] == [1]
