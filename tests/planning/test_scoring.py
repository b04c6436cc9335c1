from __future__ import annotations

import re

import polars as pl
import pytest

from skyshard.config.policy import DataClassRule, PlanningPolicy, PolicyFile
from skyshard.forecast.run import FORECAST_SCHEMA
from skyshard.placement import solve_placement
from skyshard.placement.constraints import rules_from_config
from skyshard.placement.constraints.max_shards import MaxShardsPerHost
from skyshard.scoring import (
    TERMS,
    build_outlook,
    candidate_table,
    placement_input,
    score_candidates,
)
from skyshard.scoring.trust_inputs import neutral_trust_scores
from tests.placement.packing import assert_plan_sound
from tests.planning import sky


def scores_for(policy=None, trust=None, **overrides) -> pl.DataFrame:
    data = sky.planning_data(**overrides)
    outlook = build_outlook(data, pl.DataFrame(schema=FORECAST_SCHEMA), 24)
    trust = trust if trust is not None else neutral_trust_scores(["cheap", "pricey"], 0.5)
    return score_candidates(data, outlook, policy or PolicyFile(), trust)


def row(scores: pl.DataFrame, shard: str, host: str) -> dict:
    return scores.filter((pl.col("shard_id") == shard) & (pl.col("host_id") == host)).row(
        0, named=True
    )


def test_terms_match_hand_computed_values():
    scores = scores_for()
    stay = row(scores, "db-000", "pricey-1")
    # 24 h x (0.05/cpu-h x 3 cpu + 0.002/GB-h x 2 GB)
    assert stay["run_cost"] == pytest.approx(24 * (0.05 * 3 + 0.002 * 2))
    # 144 incident minutes in 3 days -> 1/30 of the 86,400 s horizon, at 0.01 per second
    assert stay["incident_risk"] == pytest.approx(144 / (3 * 1440) * 86400 * 0.01)
    assert stay["trust_cost"] == pytest.approx(0.5 * 0.2 * stay["run_cost"])
    # two dependents (web-000, web-001) on cheap, 30 ms each, 0.001 per ms-day
    assert stay["latency_cost"] == pytest.approx(60 * 0.001)
    assert stay["migration_cost"] == 0 and stay["is_current"]
    assert stay["total"] == pytest.approx(sum(stay[t] for t in TERMS))

    away = row(scores, "web-000", "pricey-1")
    # 10 GB x 0.05 egress out of cheap + (2 s cutover + 10 GB x 5 % x 8 s/GB) x 0.01
    assert away["migration_cost"] == pytest.approx(10 * 0.05 + 6 * 0.01)
    assert away["downtime_s"] == pytest.approx(6.0)
    assert away["estimated_bytes"] == 10 * 1024**3
    same_provider = row(scores, "web-000", "cheap-2")
    assert same_provider["migration_cost"] == pytest.approx(6 * 0.01)  # no egress inside cheap
    # cheap-1 keeps 8 - 3 (both web shards) + 1.5 (own) - 1.5 (own upper) = 5 of 8 cpu free
    assert row(scores, "web-000", "cheap-1")["headroom"] == pytest.approx(5 / 8)


def test_headroom_risk_is_the_expected_overload_a_shard_brings():
    import numpy as np

    crowded = sky.usage({"web-000": np.full(sky.HOURS, 6.2)})  # cheap-1: 6.2 + 1.5 of 8 cpu
    scores = scores_for(usage=crowded)
    unit = 3600 * 0.1 * 0.01  # an overloaded shard-hour loses 10 % of the hour at 0.01 per s
    # db-000 (3 cpu, flat: no spread) on cheap-1 overloads it every hour: its own 24 h plus
    # 24 h for each of the two web shards already there
    assert row(scores, "db-000", "cheap-1")["headroom_risk"] == pytest.approx(72 * unit)
    assert row(scores, "db-000", "cheap-2")["headroom_risk"] == 0  # empty host, room to spare
    assert row(scores, "web-000", "cheap-1")["headroom_risk"] == 0  # staying brings nothing new
    assert row(scores, "web-000", "cheap-1")["overload_relief"] == 0  # 7.7 <= 8: no overload


def test_overload_risk_grows_with_the_forecast_spread():
    from tests.planning.forecasts import forecast_rows

    def risk(upper: float) -> float:
        fc = forecast_rows({"shard/db-000/cpu": [(3.0, 3.0, upper)] * 24})
        data = sky.planning_data()
        outlook = build_outlook(data, fc, 24)
        trust = neutral_trust_scores(["cheap", "pricey"], 0.5)
        scores = score_candidates(data, outlook, PolicyFile(), trust)
        return row(scores, "db-000", "cheap-1")["headroom_risk"]

    # cheap-1 has 8 - 3 (web shards) = 5 cpu left: db-000 at 3 fits at its point forecast,
    # and only a wide enough interval makes 5 likely to be crossed
    assert risk(3.0) == 0
    assert 0 < risk(4.0) < risk(6.0) < risk(9.0)


def test_a_measured_spread_replaces_the_normal_read_of_the_bounds():
    """An on/off shard: rare bursts put its upper bound far out (9 at a point of 3), while
    its measured residual spread is small. The overload it brings to cheap-1 and the relief
    its leaving gives there follow the spread with `planning.measured_spread`; a table stored
    before forecasts carried one (no `yhat_sd` column), a row without one and the default
    policy read the bounds as a normal."""
    from tests.planning.forecasts import forecast_rows

    measured_policy = PolicyFile(planning=PlanningPolicy(measured_spread=True))

    def terms(fc: pl.DataFrame, at: tuple[str, str], policy: PolicyFile) -> tuple[float, float]:
        data = sky.planning_data()
        trust = neutral_trust_scores(["cheap", "pricey"], 0.5)
        scores = score_candidates(data, build_outlook(data, fc, 24), policy, trust)
        found = row(scores, *at)
        return found["headroom_risk"], found["overload_relief"]

    def both(sd: float | None, policy: PolicyFile = measured_policy) -> tuple[float, float]:
        on_off = [(3.0, 3.0, 9.0)] * 24
        risk, _ = terms(forecast_rows({"shard/db-000/cpu": on_off}, sd), DB, policy)
        _, relief = terms(forecast_rows({"shard/web-000/cpu": on_off}, sd), WEB, policy)
        return risk, relief

    normal = both(None)
    assert normal[0] > 0 and normal[1] > 0
    old = forecast_rows({"shard/db-000/cpu": [(3.0, 3.0, 9.0)] * 24}).drop("yhat_sd")
    assert terms(old, DB, measured_policy)[0] == pytest.approx(normal[0])
    # (9 - 3) / z at the 0.9 interval is exactly the normal read
    assert both(6.0 / 1.6448536269514722) == pytest.approx(normal)
    measured = both(1.0)
    assert 0 < measured[0] < normal[0] / 3
    assert 0 <= measured[1] < normal[1] / 3
    assert both(1.0, PolicyFile()) == pytest.approx(normal)  # off by default


DB = ("db-000", "cheap-1")  # 3 cpu joining 8 - 3 (web shards) = 5 cpu left
WEB = ("web-000", "pricey-1")  # web-000 leaving cheap-1


@pytest.mark.parametrize(
    ("point", "spread", "expected_hours"),
    [
        (3.0, 1.0, None),  # 3 + 1.5 of 8 cpu at the point, only the tail overloads: some relief
        (3.0, 0.0, 0.0),  # the same at the point forecasts: nothing certain to relieve
        (7.0, 0.0, 48.0),  # 7 + 1.5 > 8 every hour: web-000's 24 h and web-001's 24 h
    ],
)
def test_relief_is_judged_at_the_policy_share_of_the_spread(point, spread, expected_hours):
    from tests.planning.forecasts import forecast_rows

    fc = forecast_rows({"shard/web-000/cpu": [(point, point, 9.0)] * 24})
    data = sky.planning_data()
    policy = PolicyFile(planning=PlanningPolicy(relief_spread=spread))
    trust = neutral_trust_scores(["cheap", "pricey"], 0.5)
    scores = score_candidates(data, build_outlook(data, fc, 24), policy, trust)
    relief = row(scores, "web-000", "pricey-1")["overload_relief"]
    unit = 3600 * 0.1 * 0.01
    if expected_hours is None:
        assert relief > 0
    else:
        assert relief == pytest.approx(expected_hours * unit)


def test_contract_data_class_blocks():
    scores = scores_for()
    blocked = row(scores, "db-000", "cheap-1")
    assert not blocked["allowed"]
    assert "data class confidential not allowed by provider cheap" in blocked["blocked_by"]


def test_min_trust_blocks_with_the_score_and_the_class():
    policy = PolicyFile(data_classes={"internal": DataClassRule(min_trust=0.6)})
    trust = neutral_trust_scores(["cheap", "pricey"], 0.5).with_columns(
        score=pl.when(pl.col("provider_id") == "pricey").then(0.9).otherwise(0.5)
    )
    scores = scores_for(policy, trust)
    assert (
        "trust 0.5 of cheap below min_trust 0.6 for data class internal"
        in (row(scores, "web-000", "cheap-2")["blocked_by"])
    )
    assert row(scores, "web-000", "pricey-1")["allowed"]


def test_allowed_providers_and_regions_block():
    policy = PolicyFile(
        data_classes={"internal": DataClassRule(allowed_providers=["cheap"])},
    )
    scores = scores_for(policy)
    assert (
        "provider pricey not allowed for data class internal"
        in (row(scores, "web-000", "pricey-1")["blocked_by"])
    )
    shards = sky.shards().with_columns(
        allowed_regions=pl.when(pl.col("shard_id") == "web-001")
        .then(pl.lit(["us"]))
        .otherwise(None)
    )
    scores = scores_for(shards=shards)
    assert (
        "region eu not in the workload's allowed regions"
        in (row(scores, "web-001", "cheap-2")["blocked_by"])
    )
    assert row(scores, "web-000", "cheap-2")["allowed"]


def test_price_cap_blocks_the_current_host_too():
    scores = scores_for(prices=sky.prices(cheap=0.06))
    stay = row(scores, "web-000", "cheap-1")
    assert not stay["allowed"]
    assert (
        "price cap: forecast 0.06 per cpu-hour at cheap above the contract cap 0.05"
        in (stay["blocked_by"])
    )


def test_latency_limits_are_explained_and_left_to_the_solver():
    far = sky.latency().with_columns(p95_ms=pl.lit(80.0))
    scores = scores_for(latency=far)
    cheap = row(scores, "web-000", "cheap-2")
    assert cheap["latency_violation"] == "latency to db-000 (pricey) is 80.0 ms, limit 50.0 ms"
    assert cheap["allowed"]  # db-000 may move too: the solver decides jointly
    assert row(scores, "web-000", "pricey-1")["latency_violation"] is None  # 1 ms inside pricey
    unknown = scores_for(latency=sky.latency().clear())
    assert "is unknown ms" in row(unknown, "web-000", "cheap-1")["latency_violation"]


def test_solver_keeps_dependencies_within_their_latency_limit(no_forecasts, neutral_trust):
    """Far providers and a price cap on cheap: the web shards follow db-000 to pricey."""
    far = sky.latency().with_columns(p95_ms=pl.lit(80.0))
    data = sky.planning_data(latency=far, prices=sky.prices(cheap=0.06))
    outlook = build_outlook(data, no_forecasts, 24)
    scores = score_candidates(data, outlook, PolicyFile(), neutral_trust)
    problem = placement_input(data, outlook, scores, PolicyFile())
    result = solve_placement(problem)
    assert_plan_sound(problem, result)
    assert set(result.assignment.values()) == {"pricey-1"}


def test_solver_moves_shards_off_a_price_capped_provider():
    data = sky.planning_data(prices=sky.prices(cheap=0.06))
    outlook = build_outlook(data, pl.DataFrame(schema=FORECAST_SCHEMA), 24)
    scores = score_candidates(
        data, outlook, PolicyFile(), neutral_trust_scores(["cheap", "pricey"], 0.5)
    )
    table = candidate_table(scores)
    assert len(table) == 9 and set(table.terms) == set(TERMS)
    problem = placement_input(data, outlook, scores, PolicyFile())
    result = solve_placement(problem)
    assert_plan_sound(problem, result)
    assert result.assignment["web-000"] == "pricey-1"
    assert {m.shard_id for m in result.moves} == {"web-000", "web-001"}


def test_spot_interruptions_add_expected_downtime_in_their_region():
    calm = scores_for()
    advice = pl.DataFrame(
        {"provider_id": ["cheap"], "region": [row(calm, "web-000", "cheap-1")["region"]]}
    ).with_columns(interruption_rate=pl.lit(0.08))  # the advisor's 5-10% band
    scores = scores_for(spot_interruption=advice)
    before = row(calm, "web-000", "cheap-1")
    after = row(scores, "web-000", "cheap-1")
    # 8 % of instance-months over a 24 h horizon, 300 s per interruption, at 0.01 per second
    added = 0.08 * 24 / 730 * 300
    assert after["spot_interruption_rate"] == pytest.approx(0.08)
    assert after["expected_downtime_s"] == pytest.approx(before["expected_downtime_s"] + added)
    assert after["incident_risk"] == pytest.approx(before["incident_risk"] + added * 0.01)
    untouched = row(scores, "web-000", "pricey-1")
    assert untouched["incident_risk"] == row(calm, "web-000", "pricey-1")["incident_risk"]
    assert untouched["spot_interruption_rate"] is None


def test_incidents_count_only_in_the_region_they_struck():
    elsewhere = sky.incidents().with_columns(
        region=pl.when(pl.col("provider_id") == "pricey").then(pl.lit("ap")).otherwise("region")
    )
    scores = scores_for(incidents=elsewhere)
    assert row(scores, "db-000", "pricey-1")["incident_risk"] == 0  # pricey-1 is in "us"
    assert row(scores_for(), "db-000", "pricey-1")["incident_risk"] > 0


def test_policy_placement_rules_reach_their_family():
    """policy.yaml's `placement_rules` become the rules the placement families read: with
    room for two shards on pricey-1, only one of the web shards leaving the capped provider
    gets there, and the one left on a capped host is reported."""
    data = sky.planning_data(prices=sky.prices(cheap=0.06))
    policy = PolicyFile.model_validate(
        {"placement_rules": [{"rule": "max_shards", "limit": 2, "hosts": ["pricey-1"]}]}
    )
    outlook = build_outlook(data, pl.DataFrame(schema=FORECAST_SCHEMA), 24)
    scores = score_candidates(data, outlook, policy, neutral_trust_scores(["cheap", "pricey"], 0.5))
    problem = placement_input(data, outlook, scores, policy)
    assert problem.rules == [MaxShardsPerHost(limit=2, hosts=("pricey-1",))]
    result = solve_placement(problem)
    assert_plan_sound(problem, result)
    assert list(result.assignment.values()).count("pricey-1") == 2
    assert result.unfixed, "the web shard left on the capped provider is reported"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"rule": "max_gpus", "limit": 1}, "placement_rules[0].rule = 'max_gpus': not one of"),
        ({"rule": "max_shards"}, "placement_rules[0] (max_shards): "),
        ({"rule": "max_shards", "limit": 1, "zone": "a"}, "unexpected keyword argument 'zone'"),
    ],
)
def test_a_placement_rule_no_family_reads_is_named(rule, message):
    policy = PolicyFile.model_validate({"placement_rules": [rule]})
    with pytest.raises(ValueError, match=re.escape(message)):
        rules_from_config([(r.rule, r.fields()) for r in policy.placement_rules])


@pytest.mark.parametrize(("last_hour", "relieved"), [(1.5, False), (7.0, True)])
def test_a_host_overloaded_now_is_relieved_at_the_full_spread(last_hour, relieved):
    import numpy as np

    from tests.planning.forecasts import forecast_rows

    # web-000 at 7 cpu in the last observed hour puts cheap-1 at 8.5 of 8: over capacity now
    use = np.full(sky.HOURS, 1.5)
    use[-1] = last_hour
    usage = sky.usage({"web-000": use})
    fc = forecast_rows({"shard/web-000/cpu": [(3.0, 3.0, 9.0)] * 24})
    data = sky.planning_data(usage=usage, capacity=sky.capacity(usage))
    policy = PolicyFile(planning=PlanningPolicy(relief_spread=0.0))
    trust = neutral_trust_scores(["cheap", "pricey"], 0.5)
    scores = score_candidates(data, build_outlook(data, fc, 24), policy, trust)
    relief = row(scores, "web-000", "pricey-1")["overload_relief"]
    assert (relief > 0) is relieved
