"""Held hosts: a host that never ran out of room with the shards it holds now is not relieved."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from skyshard.config.policy import PlanningPolicy, PolicyFile
from skyshard.plans import plan_cycle
from skyshard.scoring.held_hosts import MIN_HOURS, held_hosts, peak_use
from tests.planning import sky
from tests.planning.forecasts import forecast_rows
from tests.planning.test_plans import NOW, overloaded_cycle

ON_OFF = {
    # web-000 runs the even hours and web-001 the odd ones: each peaks at 3, together always 3
    "web-000": np.tile([3.0, 0.0], sky.HOURS // 2),
    "web-001": np.tile([0.0, 3.0], sky.HOURS // 2),
}
# Each could switch on far beyond what it ever used: pooled, cheap-1 (8 cpu) looks overloaded.
WIDE = {"shard/web-000/cpu": [(1.5, 0.0, 6.0)] * 24, "shard/web-001/cpu": [(1.5, 0.0, 6.0)] * 24}
HELD = PolicyFile(planning=PlanningPolicy(hold_hosts_with_room=True))


def cpu_peaks(data) -> dict[str, float]:
    peaks = peak_use(data).filter(pl.col("resource") == "cpu")
    return dict(peaks.select("host_id", "peak").iter_rows())


def moved(data, policy: PolicyFile, neutral_trust) -> list[str]:
    cycle = plan_cycle(data, forecast_rows(WIDE), policy, neutral_trust, created_at=NOW)
    return sorted(m.shard_id for m in cycle.result.moves)


def test_on_off_shards_that_never_filled_their_host_are_not_moved(neutral_trust):
    data = sky.planning_data(usage=sky.usage(ON_OFF))
    assert cpu_peaks(data) == {"cheap-1": 3.0, "pricey-1": 3.0}
    assert {"cheap-1", "pricey-1"} <= set(held_hosts(data)["host_id"])
    assert moved(data, PolicyFile(), neutral_trust) != []  # the pooled margins alone relieve
    assert moved(data, HELD, neutral_trust) == []


def test_a_host_that_did_overload_is_still_relieved(no_forecasts, neutral_trust):
    # web-000 grew to 7 cpu beside web-001's 1.5 on cheap-1 (8 cpu) for the last day
    cycle = overloaded_cycle(no_forecasts, neutral_trust, policy=HELD)
    assert [m.reason for m in cycle.result.moves] == ["overloaded"]


def test_one_hour_over_capacity_in_the_window_is_enough_to_relieve(neutral_trust):
    both_on = {k: v.copy() for k, v in ON_OFF.items()}
    both_on["web-000"][11] = 5.5  # beside web-001's 3: 8.5 > 8, once, 60 hours ago
    data = sky.planning_data(usage=sky.usage(both_on))
    assert cpu_peaks(data)["cheap-1"] == pytest.approx(8.5)
    assert "cheap-1" not in set(held_hosts(data).filter(pl.col("resource") == "cpu")["host_id"])
    assert moved(data, HELD, neutral_trust) != []


def test_other_tenants_count_toward_the_peak():
    data = sky.planning_data(usage=sky.usage(ON_OFF))
    crowded = data.capacity.with_columns(
        cpu_free=pl.when((pl.col("host_id") == "cheap-1") & (pl.col("hour") == sky.hours()[-5]))
        .then(pl.col("cpu_free") - 5.5)
        .otherwise(pl.col("cpu_free"))
    )
    data = sky.planning_data(usage=sky.usage(ON_OFF), capacity=crowded)
    assert cpu_peaks(data)["cheap-1"] == pytest.approx(3.0 + 5.5)
    assert "cheap-1" not in set(held_hosts(data).filter(pl.col("resource") == "cpu")["host_id"])


def test_shards_count_where_they_are_now_and_tenants_where_ours_ran_then():
    # web-000 ran on cheap-2 until 12 hours ago: cheap-2's free capacity held its use then
    use = sky.usage().with_columns(
        host_id=pl.when(
            (pl.col("shard_id") == "web-000") & (pl.col("hour") < sky.hours()[sky.HOURS - 12])
        )
        .then(pl.lit("cheap-2"))
        .otherwise(pl.col("host_id"))
    )
    peaks = cpu_peaks(sky.planning_data(usage=use))
    # cheap-1 holds both web shards now (1.5 each, every hour); nobody else ever used it or
    # cheap-2; cheap-2 holds no shard now, so it has no peak to judge
    assert peaks == {"cheap-1": 3.0, "pricey-1": 3.0}


def test_a_short_history_holds_nothing():
    short = MIN_HOURS - 2
    data = sky.planning_data(usage=sky.usage({k: v[:short] for k, v in ON_OFF.items()}, n=short))
    assert held_hosts(data).is_empty()


def test_a_host_a_shard_moved_onto_lately_is_not_held(neutral_trust):
    # usage rows carry a shard's current host: hours before a move do not show what the
    # shard adds to its new host, so a host is held only once its shards have stayed put
    data = sky.planning_data(usage=sky.usage(ON_OFF))
    assert "cheap-1" not in set(held_hosts(data, moved=["web-000"])["host_id"])
    assert "pricey-1" in set(held_hosts(data, moved=["web-000"])["host_id"])
    cycle = plan_cycle(
        data, forecast_rows(WIDE), HELD, neutral_trust, {"web-000": 3}, created_at=NOW
    )
    assert cycle.result.moves != []


def test_a_missing_free_value_holds_nothing():
    data = sky.planning_data(usage=sky.usage(ON_OFF))
    gap = data.capacity.with_columns(
        cpu_free=pl.when((pl.col("host_id") == "cheap-1") & (pl.col("hour") == sky.hours()[-5]))
        .then(None)
        .otherwise(pl.col("cpu_free"))
    )
    data = sky.planning_data(usage=sky.usage(ON_OFF), capacity=gap)
    assert cpu_peaks(data)["cheap-1"] is None
    assert "cheap-1" not in set(held_hosts(data).filter(pl.col("resource") == "cpu")["host_id"])
