"""The planning part of the main job on the simulated sky: forecasts, bottlenecks, a plan,
and the policy decisions it made, signed into the ledger."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from skyshard.ledger import Ledger


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


def test_soonest_overload_gets_a_forecast_chart(materialized):
    events = materialized.result.get_asset_materialization_events()
    [bottlenecks] = [
        e.materialization.metadata
        for e in events
        if e.asset_key.to_user_string() == "forecast/predicted_bottlenecks"
    ]
    chart = bottlenecks["soonest_forecast"].value
    assert "upper bound of the forecast" in chart
    assert "⚠" in chart  # the hours past what the host can give are marked


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
