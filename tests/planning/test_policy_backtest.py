from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from skyshard.config.policy import ForecastPolicy, PolicyFile
from skyshard.forecast.run import FORECAST_SCHEMA
from skyshard.plans.backtest import (
    POLICIES,
    BacktestOptions,
    backtest_chart,
    history_arrays,
    live_forecasts,
    policy_backtest,
)
from tests.planning import sky

DAYS = 7
# The live forecaster with Prophet switched off by policy: the same code path, in seconds.
FAST = PolicyFile(forecast=ForecastPolicy(slow_models=()))


def growing_sky():
    """web-000 grows from 1.5 to 9 cpu over the week on cheap-1 (8 cpu), with a daily cycle."""
    n = DAYS * 24
    t = np.arange(n)
    web = 1.5 + 7.5 * t / n + 0.5 * np.sin(2 * np.pi * t / 24)
    use = sky.usage({"web-000": web}, n=n)
    return sky.planning_data(usage=use, prices=sky.prices(n=n))


def rough_sky():
    """Five days: web-000 steps from 1.5 to 7 cpu at hour 84 (cheap-1 has 8 and web-001 is
    there too), web-001 spikes to 6 cpu for single hours, cheap's price climbs past pricey's
    from hour 96, and at hour 100 db-000 needs 30 cpu: more than every host together (32)
    once the others are counted, an hour no plan can keep."""
    n = 5 * 24
    t = np.arange(n)
    web0 = np.where(t >= 84, 7.0, 1.5)
    web1 = np.where(t % 17 == 5, 6.0, 1.5)
    db = np.where(t == 100, 30.0, 3.0)
    use = sky.usage({"web-000": web0, "web-001": web1, "db-000": db}, n=n)
    prices = sky.prices(n=n).with_columns(
        price_per_cpu_hour=pl.when(
            (pl.col("provider_id") == "cheap") & (pl.col("hour") >= sky.hours(n)[96])
        )
        .then(0.09)
        .otherwise(pl.col("price_per_cpu_hour"))
    )
    return sky.planning_data(usage=use, prices=prices)


def by_policy(table: pl.DataFrame) -> dict[str, dict]:
    return {row["policy"]: row for row in table.iter_rows(named=True)}


def test_backtest_orders_policies_on_a_growing_shard():
    table = policy_backtest(growing_sky(), FAST)
    assert table["policy"].to_list() == list(POLICIES)
    by = by_policy(table)
    assert by["predictive"]["total_cost"] < by["static"]["total_cost"]
    assert by["predictive"]["overload_shard_hours"] < by["static"]["overload_shard_hours"]
    assert by["predictive"]["overload_shard_hours"] < by["reactive"]["overload_shard_hours"]
    assert by["oracle"]["overload_shard_hours"] == 0
    assert by["static"]["migrations"] == 0 and by["static"]["bytes_moved"] == 0
    assert by["predictive"]["bytes_moved"] == by["predictive"]["migrations"] * 10 * 1024**3
    assert by["oracle"]["saving_share"] == pytest.approx(1.0)
    for row in by.values():
        assert row["lower_bound"] <= row["total_cost"] + 1e-9


def test_default_forecaster_is_the_live_one():
    assert BacktestOptions().forecaster is live_forecasts


def test_changing_the_forecaster_changes_the_replay():
    """The predictive policy plans on whatever the forecaster says, from history only: the
    live forecaster sees the growth coming; persistence (no forecasts) does not."""
    seen = []

    def persistence(data, policy):
        seen.append(data.as_of)
        return pl.DataFrame(schema=FORECAST_SCHEMA)

    data = growing_sky()
    only = ("predictive",)
    live = by_policy(policy_backtest(data, FAST, BacktestOptions(policies=only)))["predictive"]
    flat = policy_backtest(data, FAST, BacktestOptions(policies=only, forecaster=persistence))
    flat = by_policy(flat)["predictive"]
    assert (live["overload_shard_hours"], live["migrations"]) != (
        flat["overload_shard_hours"],
        flat["migrations"],
    )
    hours = history_arrays(data).hours
    assert seen == [hours[t] - timedelta(hours=1) for t in range(72, len(hours), 6)]


def test_rough_history_keeps_costs_and_placements_right():
    data = rough_sky()
    options = BacktestOptions(step_h=6, warmup_h=72)
    table = policy_backtest(data, FAST, options)
    by = by_policy(table)
    h = history_arrays(data)
    window = slice(72, len(h.hours))
    # static, computed independently: everything stays on its starting host
    run = float((h.demand[:, window] * h.price[h.start, window]).sum())
    load = np.stack(
        [np.bincount(h.start, weights=h.demand[:, k], minlength=3) for k in range(72, 120)]
    )
    over = (load > h.capacity).astype(int)[:, h.start].sum()
    assert by["static"]["run_cost"] == pytest.approx(run)
    assert by["static"]["overload_shard_hours"] == over
    for row in by.values():
        parts = row["run_cost"] + row["migration_cost"] + row["overload_cost"]
        assert row["total_cost"] == pytest.approx(parts)
        assert row["lower_bound"] <= row["total_cost"] + 1e-9
    # hour 100 overloads whatever the placement: every policy pays for it, none crashes
    assert all(row["overload_shard_hours"] >= 1 for row in by.values())
    # the step change is relieved by the planner once it is seen, and the price change acted on
    assert by["predictive"]["overload_shard_hours"] < by["static"]["overload_shard_hours"]
    assert by["oracle"]["overload_shard_hours"] < by["static"]["overload_shard_hours"]
    assert by["predictive"]["migrations"] >= 1


def test_window_and_policies_are_options(tmp_path):
    options = BacktestOptions(step_h=12, window_h=24, policies=("static", "reactive"))
    table = policy_backtest(growing_sky(), FAST, options)
    assert table["policy"].to_list() == ["static", "reactive"]
    assert set(table["hours"]) == {24} and set(table["step_h"]) == {12}
    png = backtest_chart(table, tmp_path / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_backtest_needs_history_beyond_warmup():
    with pytest.raises(ValueError, match="more than warmup_h=72 hours of usage history"):
        policy_backtest(sky.planning_data(), PolicyFile())


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match=r"policies \['psychic'\]: expected some of static"):
        BacktestOptions(policies=("static", "psychic"))


def test_cli_names_an_unknown_policy():
    from click.testing import CliRunner

    from skyshard.cli.main import main

    run = CliRunner().invoke(main, ["backtest", "--policies", "static,psychic"])
    assert run.exit_code == 1
    assert "policies ['psychic']: expected some of static" in run.output


def test_hindsight_free_capacity_follows_the_replayed_placement(monkeypatch):
    """The oracle's actual future of each host's free cpu is the capacity less what the shards
    the replay has put there use, not what the recorded placement used."""
    from skyshard.plans import backtest

    live_cycle = backtest.plan_cycle
    seen = []

    def spy(data, forecasts, *args, **kwargs):
        seen.append(
            (dict(data.shards.select("shard_id", "current_host_id").iter_rows()), forecasts)
        )
        return live_cycle(data, forecasts, *args, **kwargs)

    monkeypatch.setattr(backtest, "plan_cycle", spy)
    data = growing_sky()
    policy_backtest(data, FAST, BacktestOptions(policies=("oracle",)))
    h = history_arrays(data)
    capacity = dict(zip(h.host_ids, h.capacity, strict=True))
    recorded = {s: h.host_ids[i] for s, i in zip(h.shard_ids, h.start, strict=True)}
    moved = [(where, fc) for where, fc in seen if where != recorded]
    assert moved, "the oracle never moved a shard: the test needs a move"
    for where, forecasts in moved:
        free = forecasts.filter(pl.col("series_id").str.ends_with("/cpu_free")).with_columns(
            host_id=pl.col("series_id").str.split("/").list.get(1),
            hour=pl.col("ts").dt.replace_time_zone(None),
        )
        for host_id, hour, value in free.select("host_id", "hour", "yhat").iter_rows():
            k = h.hours.index(hour)
            used = sum(h.demand[i, k] for i, s in enumerate(h.shard_ids) if where[s] == host_id)
            assert value == pytest.approx(capacity[host_id] - used)
