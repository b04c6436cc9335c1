"""The planning part of the main job on the simulated sky: forecasts, bottlenecks, a plan,
and the policy decisions it made, signed into the ledger."""

from __future__ import annotations

import base64
import re
import struct
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from skyshard.ledger import Ledger
from skyshard.scoring import TERMS


def rows(materialized, sql: str) -> list[tuple]:
    with duckdb.connect(str(materialized.duckdb), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_planted_growth_is_a_predicted_bottleneck(materialized):
    grower = materialized.planted["growing_shards"][0]
    predicted = rows(
        materialized,
        "select shard_id, host_id, cause from forecast.predicted_bottlenecks "
        "where cause = 'demand_over_capacity'",
    )
    assert any(host == grower["host_id"] for _, host, _ in predicted)


def test_planted_growing_shard_gets_a_move_off_its_host(materialized):
    grower = materialized.planted["growing_shards"][0]
    ((status, moves),) = rows(materialized, "select solver_status, moves from plan.plan_runs")
    assert status in {"optimal", "feasible_with_gap", "partial"}
    planned = rows(
        materialized, "select shard_id, from_host_id, to_host_id from plan.migration_plan"
    )
    assert len(planned) == moves
    (move,) = [m for m in planned if m[0] == grower["shard_id"]]
    assert move[1] == grower["host_id"] and move[2] != grower["host_id"]


def test_policy_decisions_are_signed_into_the_ledger(materialized):
    ledger = Ledger.open(materialized.duckdb.parent / "ledger")
    decisions = list(ledger.entries(type="policy_decision"))
    kinds = {entry.payload["kind"] for entry in decisions}
    assert "placement_filter" in kinds
    assert all(len(entry.payload["policy_hash"]) == 64 for entry in decisions)
    assert ledger.verify().ok


def test_forecast_check_holds(materialized):
    checks = {c.check_name: c for c in materialized.result.get_asset_check_evaluations()}
    assert checks["chosen_not_worse_than_baseline"].passed


def metadata_of(materialized, asset: str) -> dict:
    events = materialized.result.get_asset_materialization_events()
    [metadata] = [
        e.materialization.metadata for e in events if e.asset_key.to_user_string() == asset
    ]
    return metadata


def png_size(markdown: str) -> tuple[int, int]:
    """Width and height of the PNG embedded in a metadata Markdown image."""
    match = re.fullmatch(r"!\[[^\]]+\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match, markdown[:80]
    data = base64.b64decode(match.group(1))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_shards_at_risk_get_a_forecast_chart(materialized):
    bottlenecks = metadata_of(materialized, "forecast/predicted_bottlenecks")
    width, height = png_size(bottlenecks["forecast_vs_capacity"].value)
    assert width > 400 and height > 150
    assert bottlenecks["shards_at_risk"].value >= 1


def test_plan_metadata_has_a_saving_chart_and_numbers(materialized):
    plan = metadata_of(materialized, "plan/migration_plan")
    width, height = png_size(plan["saving_by_term"].value)
    assert width > 400 and height > 150
    (moves, saving) = rows(
        materialized, "select count(*), sum(saving_per_day) from plan.migration_plan"
    )[0]
    assert plan["moves_proposed"].value == moves
    assert plan["saving_per_day"].value == pytest.approx(saving or 0.0)


def test_each_open_move_is_a_partition_showing_its_score_terms(materialized):
    open_moves = [
        m
        for (m,) in rows(
            materialized,
            "select move_id from plan.migration_plan where status in ('proposed', 'approved')",
        )
    ]
    assert open_moves, "the planted growing shard should get a move"
    partitions = materialized.instance.get_dynamic_partitions("proposed_moves")
    assert sorted(partitions) == sorted(open_moves)
    events = [
        e
        for e in materialized.result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "proposed_moves"
    ]
    assert sorted(e.partition for e in events) == sorted(open_moves)
    terms = events[0].materialization.metadata
    for term in TERMS:
        assert isinstance(terms[f"saving/{term}"].value, float)
        assert "->" in terms[f"cost/{term}"].value


def review(materialized, move_id: str, config: dict) -> dg.ExecuteInProcessResult:
    job = materialized.defs.resolve_job_def("review_plan")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("SKYSHARD_DUCKDB", str(materialized.duckdb))
        return job.execute_in_process(
            run_config={"ops": {"review_move": {"config": config}}},
            instance=materialized.instance,
            partition_key=move_id,
            raise_on_error=False,
        )


def test_review_needs_an_identity_and_a_typed_decision(materialized):
    move_id = materialized.instance.get_dynamic_partitions("proposed_moves")[0]
    job = materialized.defs.resolve_job_def("review_plan")
    for config in ({"decision": "approve"}, {"decision": "maybe", "by": "alice"}):
        with pytest.raises(dg.DagsterInvalidConfigError):
            job.execute_in_process(
                run_config={"ops": {"review_move": {"config": config}}},
                instance=materialized.instance,
                partition_key=move_id,
            )
    bad_name = review(materialized, move_id, {"decision": "approve", "by": "a b"})
    assert not bad_name.success
    assert rows(
        materialized, f"select status from plan.migration_plan where move_id = '{move_id}'"
    ) == [("proposed",)]


def test_approving_a_partition_approves_its_move_and_closes_nothing_else(materialized):
    before = materialized.instance.get_dynamic_partitions("proposed_moves")
    move_id = before[0]
    approved = review(materialized, move_id, {"decision": "approve", "by": "alice", "reason": "ok"})
    assert approved.success
    assert rows(
        materialized,
        f"select status, approved_by, decision_note from plan.migration_plan "
        f"where move_id = '{move_id}'",
    ) == [("approved", "alice", "ok")]
    # Approved moves stay reviewable (they can still be rejected) until they run.
    assert materialized.instance.get_dynamic_partitions("proposed_moves") == before
    rejected = review(materialized, move_id, {"decision": "reject", "by": "bob"})
    assert rejected.success
    assert move_id not in materialized.instance.get_dynamic_partitions("proposed_moves")


def test_every_asset_has_owners_and_python_assets_link_their_code(materialized):
    specs = list(materialized.defs.resolve_all_asset_specs())
    assert specs
    assert [s.key for s in specs if not s.owners] == []
    python = [s for s in specs if "python" in s.kinds]
    assert python
    assert [s.key for s in python if "dagster/code_references" not in s.metadata] == []


def test_python_tables_carry_typed_and_described_column_schemas(materialized):
    schemas = {}
    for event in materialized.result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if "dagster/table_name" in metadata:
            schemas[metadata["dagster/table_name"].value] = metadata["dagster/column_schema"].value
    assert {"raw.shard_usage", "plan.proposed_moves", "forecast.predicted_bottlenecks"} <= set(
        schemas
    )
    for table, schema in schemas.items():
        stored = dict(
            rows(
                materialized,
                "select column_name, data_type from information_schema.columns "
                f"where table_schema || '.' || table_name = '{table}'",
            )
        )
        assert {c.name: c.type for c in schema.columns} == stored, table
        assert [c.name for c in schema.columns if not c.description] == [], table


def test_bottlenecks_plans_and_trust_scores_are_checked(materialized):
    checks = {c.check_name: c for c in materialized.result.get_asset_check_evaluations()}
    for name in ("bottlenecks_are_known_and_ahead", "moves_are_feasible", "every_provider_scored"):
        assert checks[name].passed, checks[name].metadata
    assert "telemetry_is_recent" in checks


def test_policy_backtest_asset_takes_options_and_draws_a_chart(materialized, monkeypatch):
    """Launched on its own (the cycle job leaves it out): a window, a step and policies."""
    from assets.planning import policy_backtest
    from orchestration.resources import build_resources

    monkeypatch.setenv("SKYSHARD_HOME", str(materialized.home))
    monkeypatch.setenv("SKYSHARD_DUCKDB", str(materialized.duckdb))
    config = {"step_h": 12, "window_h": 24, "policies": ["static", "reactive"]}
    result = dg.materialize(
        [policy_backtest],
        resources=build_resources(),
        run_config={"ops": {policy_backtest.op.name: {"config": config}}},
    )
    assert result.success
    table = rows(materialized, "select policy, hours, step_h from plan.policy_backtest")
    assert table == [("static", 24, 12), ("reactive", 24, 12)]
    (event,) = result.get_asset_materialization_events()
    png = Path(event.materialization.metadata["chart"].value)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
