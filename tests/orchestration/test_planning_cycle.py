"""The planning part of the main job on the simulated sky: forecasts, bottlenecks, a plan,
and the policy decisions it made, signed into the ledger."""

from __future__ import annotations

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


def test_plan_run_is_stored_with_solver_status(materialized):
    ((status, moves),) = rows(materialized, "select solver_status, moves from plan.plan_runs")
    assert status in {"optimal", "feasible_with_gap", "infeasible", "no_solution"}
    (planned,) = rows(materialized, "select count(*) from plan.migration_plan")[0]
    assert planned == moves


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
