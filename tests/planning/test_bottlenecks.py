from __future__ import annotations

from datetime import timedelta

import polars as pl

from skyshard.scoring import build_outlook
from skyshard.scoring.bottlenecks import (
    CAPACITY_LOSS,
    DEMAND,
    INCIDENT,
    PRICE,
    predict_bottlenecks,
)
from tests.planning import sky
from tests.planning.forecasts import forecast_rows


def bottlenecks(forecasts: pl.DataFrame, **overrides) -> pl.DataFrame:
    data = sky.planning_data(**overrides)
    return predict_bottlenecks(data, build_outlook(data, forecasts, 24))


def test_growing_shard_is_caught_at_the_hour_its_upper_bound_crosses(no_forecasts):
    # web-000's upper bound grows 0.5 cpu an hour from 1.5; cheap-1 gives it 8 - 1.5 (web-001)
    growing = forecast_rows(
        {"shard/web-000/cpu": [(1.5 + 0.4 * k, 1.0, 1.5 + 0.5 * k) for k in range(1, 25)]}
    )
    found = bottlenecks(growing)
    web = found.filter(pl.col("shard_id") == "web-000").row(0, named=True)
    assert web["cause"] == DEMAND and web["resource"] == "cpu"
    assert web["hours_ahead"] == 11  # 1.5 + 0.5 * 11 = 7.0 > 6.5, 1.5 + 0.5 * 10 = 6.5 is not
    assert web["expected_at"] == sky.AS_OF + timedelta(hours=11)
    assert web["point_at"] == sky.AS_OF + timedelta(hours=13)  # 1.5 + 0.4 * 13 = 6.7
    assert web["available"] == 6.5 and web["demand_upper"] == 7.0
    assert found.filter(pl.col("shard_id") == "db-000").is_empty()
    assert bottlenecks(no_forecasts).is_empty()  # flat usage, no provider events


def test_host_free_capacity_forecast_limits_what_shards_get():
    # Another tenant takes cheap-1 over: its free cpu lower bound falls to 0 from hour 5.
    free = [(5.0, 5.0, 5.0)] * 4 + [(0.0, 0.0, 0.0)] * 20
    web = [(1.5, 1.0, 2.0)] * 24
    found = bottlenecks(forecast_rows({"host/cheap-1/cpu_free": free, "shard/web-000/cpu": web}))
    # from hour 5 the host gives web-000 0 + 3 (our shards) - 1.5 (web-001) = 1.5 < 2.0
    rows = found.filter((pl.col("shard_id") == "web-000") & (pl.col("cause") == DEMAND))
    assert rows["hours_ahead"].to_list() == [5]
    assert rows["available"].to_list() == [1.5]
    assert found.filter(pl.col("shard_id") == "web-001").is_empty()  # its bound equals its point


def test_provider_events_reach_every_shard_there(no_forecasts):
    found = bottlenecks(
        no_forecasts,
        prices=sky.prices(cheap=0.06),
        incidents=sky.incidents(cheap_open=True),
    )
    web = found.filter(pl.col("shard_id") == "web-000")
    assert web["cause"].to_list() == [INCIDENT, PRICE]
    assert web["hours_ahead"].to_list() == [0, 1]
    assert "price forecast 0.06 per cpu-hour above the cap 0.05" in web["detail"][1]
    assert found.filter(pl.col("shard_id") == "db-000").is_empty()


def test_capacity_withdrawal_is_a_bottleneck():
    shrinking = forecast_rows({"capacity/pricey/cpu": [(16.0, 16.0, 16.0)] * 6 + [(8, 8, 8)] * 18})
    found = bottlenecks(shrinking)
    db = found.filter(pl.col("shard_id") == "db-000").row(0, named=True)
    assert db["cause"] == CAPACITY_LOSS and db["hours_ahead"] == 7
    assert "down to 8.0 from 16.0" in db["detail"]
