"""Hosts judged on their pooled upper quantile: shard shares and host supply."""

from __future__ import annotations

import math

import polars as pl
import pytest

from skyshard.scoring import build_outlook
from skyshard.scoring.problem import pooled_demand
from tests.planning import sky
from tests.planning.forecasts import forecast_rows


def outlook_for(series: dict[str, list[tuple[float, float, float]]]):
    data = sky.planning_data()
    return data, build_outlook(data, forecast_rows(series), 24)


def shares(series, sd: float | None = None, measured: bool = False) -> dict[str, float]:
    data = sky.planning_data()
    outlook = build_outlook(data, forecast_rows(series, sd), 24)
    pooled = pooled_demand(data, outlook, 0.9, measured)
    return dict(pooled.select("shard_id", "cpu").iter_rows())


def test_two_spiky_shards_share_one_pooled_margin():
    # both web shards on cheap-1: point 1.5, upper 3.5; db-000 flat on pricey-1
    web = [(1.5, 1.0, 3.5)] * 24
    share = shares({"shard/web-000/cpu": web, "shard/web-001/cpu": web})
    # cheap-1's upper quantile is 3 + sqrt(2^2 + 2^2), not 3.5 + 3.5
    rho = math.sqrt(8) / 4
    assert share["web-000"] == pytest.approx(1.5 + rho * 2)
    assert share["web-000"] + share["web-001"] == pytest.approx(3 + math.sqrt(8))
    assert share["db-000"] == pytest.approx(3.0)  # no forecast: last value, no spread


def test_a_measured_spread_sets_the_margin_where_present():
    # the same bounds, but each web shard's measured spread is 0.5: its margin is z * 0.5
    web = [(1.5, 1.0, 3.5)] * 24
    z = 1.6448536269514722
    both = {"shard/web-000/cpu": web, "shard/web-001/cpu": web}
    share = shares(both, sd=0.5, measured=True)
    assert share["web-000"] + share["web-001"] == pytest.approx(3 + math.sqrt(2) * z * 0.5)
    assert share["db-000"] == pytest.approx(3.0)  # no forecast row: still no spread
    unmeasured = shares(both, sd=0.5)  # the policy's default reads the bounds
    assert unmeasured["web-000"] + unmeasured["web-001"] == pytest.approx(3 + math.sqrt(8))


def test_a_busy_hour_and_a_spike_are_not_added_up():
    web = [(4.0, 4.0, 4.0)] + [(1.0, 0.5, 3.0)] * 23
    share = shares({"shard/web-000/cpu": web, "shard/web-001/cpu": [(1.5, 1.0, 3.5)] * 24})
    # web-000 peaks at 4 with no margin, or 1 + rho * 2 (rho < 1) elsewhere: never 4 + 2
    assert share["web-000"] == pytest.approx(4.0)


def supply(free: tuple[float, float, float], web_upper: float) -> float:
    _, outlook = outlook_for(
        {
            "host/cheap-1/cpu_free": [free] * 24,
            "shard/web-000/cpu": [(1.5, 1.0, web_upper)] * 24,
            "shard/web-001/cpu": [(1.5, 1.0, web_upper)] * 24,
        }
    )
    cheap = outlook.supply.filter((pl.col("host_id") == "cheap-1") & (pl.col("resource") == "cpu"))
    return cheap["supply"].min()


def test_supply_adds_back_the_spread_our_own_shards_explain():
    # free 4, lower bound 3; our web shards use 3 at their point forecast
    assert supply((4.0, 3.0, 5.0), web_upper=1.5) == pytest.approx(6.0)  # no spread of ours
    # their pooled margin (sqrt 2 ~ 1.41) explains the free series' margin (1) only up to 1
    assert supply((4.0, 3.0, 5.0), web_upper=2.5) == pytest.approx(7.0)
    # a free margin (2) wider than theirs (sqrt 0.5): theirs is added back in full
    assert supply((4.0, 2.0, 5.0), web_upper=2.0) == pytest.approx(2 + 3 + math.sqrt(0.5))
