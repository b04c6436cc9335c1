"""The invariants the asset checks run: each query finds the rows that break it."""

from __future__ import annotations

import duckdb
import pytest

from skyshard.plans.checks import bottleneck_problems, plan_problems, trust_problems


@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "checks.duckdb")) as con:
        for schema in ("marts", "forecast", "plan", "trust"):
            con.execute(f"create schema {schema}")
        con.execute("create table marts.dim_shards as select 'web-1' as shard_id")
        con.execute(
            "create table forecast.predicted_bottlenecks "
            "(shard_id varchar, cause varchar, hours_ahead bigint)"
        )
        con.execute(
            "create table plan.plan_runs as select 'run-2' as plan_run_id, "
            "timestamp '2026-11-30 10:00' as created_at union all "
            "select 'run-1', timestamp '2026-11-29 10:00'"
        )
        con.execute(
            "create table plan.proposed_moves (move_id varchar, plan_run_id varchar, "
            "shard_id varchar, from_host_id varchar, to_host_id varchar)"
        )
        con.execute(
            "create table plan.candidate_scores as select * from (values "
            "('web-1', 'h1', true, true), ('web-1', 'h2', false, true), "
            "('web-1', 'h3', false, false)) t(shard_id, host_id, is_current, allowed)"
        )
        con.execute("create table trust.scores (provider_id varchar, score double)")
        yield con


def test_bottlenecks_of_unknown_shards_or_past_the_horizon(con):
    con.execute(
        "insert into forecast.predicted_bottlenecks values "
        "('web-1', 'demand_over_capacity', 5), ('ghost', 'open_incident', 0), "
        "('web-1', 'price_over_cap', 80)"
    )
    problems = bottleneck_problems(con, 48)
    assert len(problems) == 2
    assert "shard_id=ghost" in problems[0] and "unknown shard" in problems[0]
    assert "hours_ahead=80" in problems[1] and "outside 0..48" in problems[1]


def test_plan_moves_must_start_at_home_and_go_to_an_allowed_host(con):
    con.execute(
        "insert into plan.proposed_moves values ('mv-ok', 'run-2', 'web-1', 'h1', 'h2'), "
        "('mv-old', 'run-1', 'web-1', 'h2', 'h3')"
    )
    assert plan_problems(con) == []  # the older run's move is not the latest plan
    con.execute("insert into plan.proposed_moves values ('mv-bad', 'run-2', 'web-1', 'h2', 'h3')")
    problems = plan_problems(con)
    assert sum("moved twice" in p for p in problems) == 2
    assert any("mv-bad" in p and "target h3 is not an allowed candidate" in p for p in problems)
    assert any("mv-bad" in p and "source h2 is not the current host" in p for p in problems)


def test_every_provider_needs_one_score_in_range(con):
    con.execute("insert into trust.scores values ('a', 0.7), ('b', 1.5), ('c', 'nan')")
    problems = trust_problems(con, ["a", "b", "c", "d"])
    assert sorted(p.split(",")[0] for p in problems) == [
        "provider_id=b",
        "provider_id=c",
        "provider_id=d",
    ]
    assert any(p.startswith("provider_id=d") and "no score" in p for p in problems)
