from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from skyshard import db
from skyshard.broker.ops_tables import ops_mirror
from skyshard.cli.plans import plan
from skyshard.config.policy import AutoApproval, PlanningPolicy, PolicyFile
from skyshard.ledger import Ledger
from skyshard.plans import (
    AUTO_APPROVER,
    MoveStatus,
    PlanError,
    PlanStatuses,
    cycles_since_move,
    list_moves,
    plan_cycle,
    write_bottlenecks,
    write_plan,
)
from skyshard.plans.store import read_bottlenecks
from skyshard.storage.snapshots import read_snapshot
from tests.planning import sky

NOW = datetime(2026, 11, 28, 0, 30)


def overloaded_data():
    """web-000 grows to 7 cpu on cheap-1 (8 cpu, shared with web-001): one must move."""
    cpu = np.full(sky.HOURS, 1.5)
    cpu[-24:] = 7.0
    return sky.planning_data(usage=sky.usage({"web-000": cpu}))


def overloaded_cycle(no_forecasts, neutral_trust, policy=None, unmovable=None):
    data = overloaded_data()
    return plan_cycle(data, no_forecasts, policy or PolicyFile(), neutral_trust, created_at=NOW,
                      unmovable=unmovable)  # fmt: skip


@pytest.fixture
def statuses(tmp_path, state_backend) -> PlanStatuses:
    """Plan statuses on the backend the test runs on (the DuckDB file, or Postgres)."""
    return PlanStatuses(tmp_path / "skyshard.duckdb")


@pytest.fixture
def stored(tmp_path, statuses, no_forecasts, neutral_trust):
    path = tmp_path / "skyshard.duckdb"
    cycle = overloaded_cycle(no_forecasts, neutral_trust)
    with db.connect(path) as con:
        write_plan(con, statuses, cycle.run, cycle.plan)
    return path, cycle.plan.row(0, named=True)["move_id"]


def trail(statuses: PlanStatuses, move_id: str) -> list[tuple[str, str, str]]:
    return [
        (d["from_status"], d["to_status"], d["decided_by"]) for d in statuses.decisions(move_id)
    ]


def test_plan_rows_explain_the_move(no_forecasts, neutral_trust):
    cycle = overloaded_cycle(no_forecasts, neutral_trust)
    assert cycle.plan.height == 1
    move = cycle.plan.row(0, named=True)
    assert move["shard_id"] == "web-001" and move["to_host_id"] == "cheap-2"
    assert move["reason"] == "bottleneck"
    assert "demand upper bound" in move["reason_detail"]
    assert move["status"] == "proposed" and move["approval_mode"] == "manual"
    assert move["estimated_bytes"] == 10 * 1024**3 and move["downtime_s"] == 6.0
    run = cycle.run.row(0, named=True)
    assert run["solver_status"] == "optimal" and run["moves"] == 1
    assert run["plan_run_id"] == move["plan_run_id"]


def test_a_shard_the_broker_cannot_migrate_stays_and_says_why(no_forecasts, neutral_trust):
    why = "not registered in ops.routing"
    cycle = overloaded_cycle(no_forecasts, neutral_trust, unmovable={"web-001": why})
    assert cycle.plan["shard_id"].to_list() == ["web-000"]  # the other one moves instead
    blocked = cycle.scores.filter(pl.col("shard_id") == "web-001")
    assert blocked.filter(pl.col("is_current"))["allowed"].all()
    others = blocked.filter(~pl.col("is_current"))
    assert not others["allowed"].any()
    assert all(f"cannot migrate: {why}" in reason for reason in others["blocked_by"])


def test_same_inputs_give_the_same_ids_and_keep_decisions(
    tmp_path, statuses, no_forecasts, neutral_trust
):
    first = overloaded_cycle(no_forecasts, neutral_trust)
    again = overloaded_cycle(no_forecasts, neutral_trust)
    assert first.plan["move_id"].to_list() == again.plan["move_id"].to_list()
    assert first.inputs == again.inputs
    path = tmp_path / "skyshard.duckdb"
    with db.connect(path) as con:
        assert write_plan(con, statuses, first.run, first.plan) == 1
        move_id = first.plan["move_id"][0]
        statuses.decide(move_id, MoveStatus.APPROVED, "alice", "looks right", at=NOW)
        assert write_plan(con, statuses, again.run, again.plan) == 0
        assert statuses.move(move_id)["status"] == "approved"
        assert con.execute("select count(*) from plan.plan_runs").fetchone()[0] == 1
    other = plan_cycle(
        sky.planning_data(usage=again.outlook and sky.usage({"web-000": np.full(72, 7.5)})),
        no_forecasts,
        PolicyFile(),
        neutral_trust,
        created_at=NOW,
    )
    assert other.inputs != first.inputs


def test_auto_approval_follows_policy(no_forecasts, neutral_trust):
    generous = PolicyFile(
        planning=PlanningPolicy(
            auto_approve=AutoApproval(enabled=True, min_saving_per_day=0.0, max_risk=1.0)
        )
    )
    move = overloaded_cycle(no_forecasts, neutral_trust, generous).plan.row(0, named=True)
    assert move["status"] == "approved" and move["approval_mode"] == "auto"
    assert move["approved_by"] == AUTO_APPROVER and move["decided_at"] == NOW
    strict = PolicyFile(
        planning=PlanningPolicy(
            auto_approve=AutoApproval(enabled=True, min_saving_per_day=1000.0, max_risk=1.0)
        )
    )
    move = overloaded_cycle(no_forecasts, neutral_trust, strict).plan.row(0, named=True)
    assert move["status"] == "proposed"


def test_approve_then_run_and_the_audit_trail(stored, statuses):
    path, move_id = stored
    row = statuses.decide(move_id, "approved", "alice", "capacity", at=NOW)
    assert (row["status"], row["approved_by"], row["decision_note"]) == (
        "approved",
        "alice",
        "capacity",
    )
    statuses.decide(move_id, MoveStatus.RUNNING, "sensor:migrate", at=NOW)
    statuses.decide(move_id, MoveStatus.DONE, "sensor:migrate", at=NOW)
    assert trail(statuses, move_id) == [
        ("proposed", "approved", "alice"),
        ("approved", "running", "sensor:migrate"),
        ("running", "done", "sensor:migrate"),
    ]
    assert statuses.move(move_id)["approved_by"] == "alice"
    with db.connect(path) as con:
        assert cycles_since_move(con, statuses) == {"web-001": 0}


def test_bad_transitions_and_arguments_change_nothing(stored, statuses):
    _, move_id = stored
    statuses.decide(move_id, MoveStatus.REJECTED, "bob", "too risky", at=NOW)
    before = statuses.move(move_id)
    with pytest.raises(PlanError, match="cannot go from 'rejected' to 'approved'"):
        statuses.decide(move_id, MoveStatus.APPROVED, "alice")
    with pytest.raises(PlanError, match="no move with id 'mv-0000000000000000'"):
        statuses.decide("mv-0000000000000000", MoveStatus.APPROVED, "alice")
    with pytest.raises(PlanError, match="move id 'x; drop table' is malformed"):
        statuses.decide("x; drop table", MoveStatus.APPROVED, "alice")
    with pytest.raises(PlanError, match="--by 'a b' is not a valid name"):
        statuses.decide(move_id, MoveStatus.APPROVED, "a b")
    with pytest.raises(PlanError, match="status 'maybe' is not one of"):
        statuses.decide(move_id, "maybe", "alice")
    assert statuses.move(move_id) == before
    assert len(statuses.decisions(move_id)) == 1


def test_cli_approve_reject_and_list(stored, statuses, state_backend, monkeypatch):
    path, move_id = stored
    monkeypatch.setenv("SKYSHARD_DUCKDB", str(path))
    runner = CliRunner()
    listed = runner.invoke(plan, ["list", "--status", "proposed"])
    assert listed.exit_code == 0 and move_id in listed.output
    done = runner.invoke(plan, ["approve", move_id, "--by", "carol", "--reason", "ok"])
    assert done.exit_code == 0, done.output
    assert "is now approved (by carol)" in done.output
    anonymous = runner.invoke(plan, ["approve", move_id], env={"SKYSHARD_OPERATOR": None})
    assert anonymous.exit_code == 2 and "Missing option '--by'" in anonymous.output
    again = runner.invoke(plan, ["approve", move_id], env={"SKYSHARD_OPERATOR": "erin"})
    assert again.exit_code == 1
    assert "cannot go from 'approved' to 'approved'" in again.output
    unknown = runner.invoke(plan, ["reject", "mv-ffffffffffffffff", "--by", "erin"])
    assert unknown.exit_code == 1 and "no move with id 'mv-ffffffffffffffff'" in unknown.output
    bad_status = runner.invoke(plan, ["list", "--status", "maybe"])
    assert bad_status.exit_code == 2 and "maybe" in bad_status.output
    rejected = runner.invoke(plan, ["reject", move_id, "--by", "dave"])
    assert rejected.exit_code == 0
    with db.connect(path) as con:
        moves = list_moves(con, statuses)
        assert moves.row(0, named=True)["status"] == "rejected"
        assert list_moves(con, statuses, "approved").is_empty()
    # The SQL views show the statuses wherever they live (Postgres: joined in the snapshot).
    mirror = ops_mirror(path)
    assert (mirror is None) == (state_backend == "duckdb")
    with read_snapshot(path, mirror) as (con, _):
        assert con.execute("select status from plan.current_plan").fetchall() == [("rejected",)]
        assert con.execute("select provider_id from plan.savings_by_provider").fetchall() == []
        assert con.execute("select to_status from plan.decisions order by seq").fetchall() == [
            ("approved",),
            ("rejected",),
        ]
    assert isinstance(moves, pl.DataFrame)
    decisions = Ledger.open().verified_entries("operator_decision")
    assert [(e.payload["decision"], e.payload["by"], e.payload["via"]) for e in decisions] == [
        ("approved", "carol", "cli"),
        ("rejected", "dave", "cli"),
    ]
    assert decisions[0].payload["reason"] == "ok" and decisions[0].payload["host"]


def test_a_new_run_supersedes_moves_still_proposed(tmp_path, statuses, no_forecasts, neutral_trust):
    path = tmp_path / "skyshard.duckdb"
    first = overloaded_cycle(no_forecasts, neutral_trust)
    calm = plan_cycle(
        sky.planning_data(), no_forecasts, PolicyFile(), neutral_trust, created_at=NOW
    )
    assert calm.plan.height == 0
    move_id = first.plan.row(0, named=True)["move_id"]
    with db.connect(path) as con:
        write_plan(con, statuses, first.run, first.plan)
        write_plan(con, statuses, calm.run, calm.plan)
    move = statuses.move(move_id)
    assert move["status"] == "rejected"
    assert move["decision_note"] == f"superseded by plan run {calm.run['plan_run_id'][0]}"
    assert trail(statuses, move_id) == [("proposed", "rejected", "planner")]


def test_a_new_run_leaves_approved_moves_alone(stored, statuses, no_forecasts, neutral_trust):
    path, move_id = stored
    calm = plan_cycle(
        sky.planning_data(), no_forecasts, PolicyFile(), neutral_trust, created_at=NOW
    )
    statuses.decide(move_id, MoveStatus.APPROVED, "alice")
    with db.connect(path) as con:
        write_plan(con, statuses, calm.run, calm.plan)
    assert statuses.move(move_id)["status"] == "approved"


def test_planning_uses_the_stored_bottlenecks_instead_of_predicting_again(
    tmp_path, no_forecasts, neutral_trust
):
    predicted = overloaded_cycle(no_forecasts, neutral_trust)
    assert predicted.bottlenecks.height > 0
    with db.connect(tmp_path / "skyshard.duckdb") as con:
        write_bottlenecks(con, predicted.bottlenecks)
        stored = read_bottlenecks(con)
    data = overloaded_data()
    again = plan_cycle(
        data, no_forecasts, PolicyFile(), neutral_trust, created_at=NOW, bottlenecks=stored
    )
    assert again.bottlenecks.equals(predicted.bottlenecks)
    assert again.plan.equals(predicted.plan)
    none = plan_cycle(
        data, no_forecasts, PolicyFile(), neutral_trust, created_at=NOW, bottlenecks=stored.clear()
    )
    assert none.bottlenecks.is_empty()
    assert none.plan["reason_detail"].to_list() != predicted.plan["reason_detail"].to_list()
