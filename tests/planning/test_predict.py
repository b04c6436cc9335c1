from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from skyshard.cli.plans import print_assessment
from skyshard.config.policy import DataClassRule, PolicyFile
from skyshard.plans.whatif import assess_shard, predict_migration
from skyshard.scoring.trust_inputs import neutral_trust_scores
from tests.planning import sky


def overloaded():
    cpu = np.full(sky.HOURS, 1.5)
    cpu[-24:] = 7.0
    return sky.planning_data(usage=sky.usage({"web-000": cpu}))


def test_bottlenecked_shard_moves_to_the_best_host_with_room(no_forecasts):
    request = predict_migration("web-000", overloaded(), forecasts=no_forecasts)
    assert request is not None
    assert (request.from_host, request.to_host) == ("cheap-1", "cheap-2")
    assert request.reason == "bottleneck" and "demand_over_capacity in 1 h" in request.detail
    assert request.terms["migration_cost"] == pytest.approx(0.06)
    # cheap-2 is empty: the move brings no overload there, and takes 24 h of it off cheap-1
    assert request.terms["headroom_risk"] == 0 and request.stay_terms["headroom_risk"] == 0
    stay_total = sum(request.stay_terms.values())
    relief = 48 * 3600 * 0.1 * 0.01  # web-000 and web-001 on an overloaded cheap-1 for 24 h
    assert request.saving_per_day == pytest.approx(
        stay_total + relief - sum(request.terms.values())
    )
    assert request.estimated_bytes == 10 * 1024**3


def test_calm_shard_stays_and_says_why(no_forecasts):
    assert predict_migration("web-000", sky.planning_data(), forecasts=no_forecasts) is None
    assessment = assess_shard(
        "web-000",
        sky.planning_data(),
        PolicyFile(),
        neutral_trust_scores(["cheap", "pricey"], 0.5),
        no_forecasts,
    )
    assert "no bottleneck ahead" in assessment.why_not


def test_blocked_current_host_moves_for_trust(no_forecasts):
    policy = PolicyFile(data_classes={"internal": DataClassRule(min_trust=0.6)})
    trust = neutral_trust_scores(["cheap", "pricey"], 0.5).with_columns(
        score=pl.when(pl.col("provider_id") == "pricey").then(0.9).otherwise(0.5)
    )
    request = predict_migration(
        "web-000", sky.planning_data(), policy=policy, trust=trust, forecasts=no_forecasts
    )
    assert request is not None and request.to_provider == "pricey"
    assert request.reason == "trust" and "below min_trust 0.6" in request.detail


def test_candidate_providers_restrict_the_answer(no_forecasts):
    request = predict_migration("web-000", overloaded(), ["pricey"], forecasts=no_forecasts)
    assert request is not None and request.to_host == "pricey-1"


def test_unknown_shard_is_named(no_forecasts):
    with pytest.raises(ValueError, match="unknown shard 'nope'"):
        predict_migration("nope", sky.planning_data(), forecasts=no_forecasts)


def test_forecasts_its_own_series_and_prints_the_breakdown(capsys):
    """Without stored forecasts it fits this shard's series (Prophet and baseline)."""
    data = overloaded()
    assessment = assess_shard(
        "web-000", data, PolicyFile(), neutral_trust_scores(["cheap", "pricey"], 0.5)
    )
    assert assessment.request is not None and assessment.request.to_host != "cheap-1"
    print_assessment(assessment)
    out = capsys.readouterr().out
    assert "move cheap-1 ->" in out and "bottlenecks ahead" in out
    assert "candidates (cost over the horizon)" in out and "pricey-1" in out


def test_a_lone_move_keeps_its_dependencies_latency(no_forecasts):
    """web-000 cannot leave for pricey alone... but it can: db-000 is there; cheap-2 is out
    when cheap <-> pricey is too slow, so the bottlenecked shard goes next to its database."""
    far = sky.latency().with_columns(p95_ms=pl.lit(80.0))
    data = overloaded()
    data = sky.planning_data(usage=data.usage, latency=far)
    request = predict_migration("web-000", data, forecasts=no_forecasts)
    assert request is not None and request.to_host == "pricey-1"
