"""Bursts measured on each shard's history, and the overload risk they bring to a host."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from skyshard.config.policy import PlanningPolicy, PolicyFile
from skyshard.scoring.bursts import shard_bursts
from tests.planning import sky
from tests.planning.test_scoring import row, scores_for

BURST_HOURS = [26, 36, 46]  # after the first day (no baseline), before the last (the peak)


def bursty(level: float = 1.5, excess: float = 5.5) -> np.ndarray:
    noise = np.random.default_rng(3).normal(0.0, 0.02, sky.HOURS)
    cpu = level + noise
    cpu[BURST_HOURS] += excess
    return cpu


def test_a_shard_bursts_at_the_rate_and_size_its_history_shows():
    use = sky.usage({"web-000": bursty()})
    found = shard_bursts(use, ["web-001", "web-000", "nowhere"])
    # 48 hours have a baseline (the same hour a day or more before)
    assert found.rate.tolist() == pytest.approx([0.0, 3 / 48, 0.0])
    assert found.excess[1] == pytest.approx(5.5, abs=0.1)
    assert found.excess[0] == 0.0 and found.excess[2] == 0.0


def test_a_day_of_history_shows_no_bursts():
    use = sky.usage({"web-000": bursty()[:30]}, n=30)
    assert shard_bursts(use, ["web-000"]).rate.tolist() == [0.0]


def test_joining_a_bursty_shard_costs_its_bursts():
    # web-001 runs on the empty cheap-2; web-000 on cheap-1 (8 cpu) bursts to 7 cpu at times:
    # web-001's 1.5 beside it would overload cheap-1 in those hours
    use = sky.usage({"web-000": bursty()}).with_columns(
        host_id=pl.when(pl.col("shard_id") == "web-001")
        .then(pl.lit("cheap-2"))
        .otherwise(pl.col("host_id"))
    )
    shards = sky.shards().with_columns(
        current_host_id=pl.when(pl.col("shard_id") == "web-001")
        .then(pl.lit("cheap-2"))
        .otherwise(pl.col("current_host_id"))
    )
    plain = scores_for(
        PolicyFile(planning=PlanningPolicy(burst_risk=False)), usage=use, shards=shards
    )
    aware = scores_for(usage=use, shards=shards)  # the default
    without = row(plain, "web-001", "cheap-1")["headroom_risk"]
    with_bursts = row(aware, "web-001", "cheap-1")["headroom_risk"]
    # 24 hours x 3/48 chance of a burst x 2 shard-hours (web-001's own and web-000's) x 3.6
    assert without == pytest.approx(0.0, abs=0.01)
    assert with_bursts == pytest.approx(24 * 3 / 48 * 2 * 3.6, rel=0.1)
    assert row(aware, "web-001", "cheap-2")["headroom_risk"] == 0.0  # staying: nothing new
    # the burster brings its bursts along: beside web-001 on cheap-2 too, but not to the
    # 16-cpu pricey-1 (7 + 3 cpu)
    assert row(aware, "web-000", "cheap-2")["headroom_risk"] == pytest.approx(with_bursts)
    assert row(aware, "web-000", "pricey-1")["headroom_risk"] == pytest.approx(0.0, abs=0.01)
