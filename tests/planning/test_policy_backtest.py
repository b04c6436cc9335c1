from __future__ import annotations

import numpy as np
import pytest

from skyshard.config.policy import PolicyFile
from skyshard.plans.backtest import POLICIES, policy_backtest
from tests.planning import sky

DAYS = 7


def growing_sky():
    """web-000 grows from 1.5 to 9 cpu over the week on cheap-1 (8 cpu), with a daily cycle."""
    n = DAYS * 24
    t = np.arange(n)
    web = 1.5 + 7.5 * t / n + 0.5 * np.sin(2 * np.pi * t / 24)
    use = sky.usage({"web-000": web}, n=n)
    return sky.planning_data(usage=use, prices=sky.prices(n=n))


def test_backtest_orders_policies_on_a_growing_shard():
    table = policy_backtest(growing_sky(), PolicyFile())
    assert table["policy"].to_list() == list(POLICIES)
    by = {row["policy"]: row for row in table.iter_rows(named=True)}
    assert by["oracle"]["total_cost"] <= by["predictive"]["total_cost"] + 1e-9
    assert by["predictive"]["total_cost"] <= by["static"]["total_cost"]
    assert by["predictive"]["overload_shard_hours"] < by["static"]["overload_shard_hours"]
    assert by["predictive"]["overload_shard_hours"] < by["reactive"]["overload_shard_hours"]
    assert by["static"]["migrations"] == 0 and by["static"]["bytes_moved"] == 0
    assert by["predictive"]["bytes_moved"] == by["predictive"]["migrations"] * 10 * 1024**3


def test_backtest_needs_history_beyond_warmup():
    with pytest.raises(ValueError, match="more than warmup_h=72 hours of usage history"):
        policy_backtest(sky.planning_data(), PolicyFile())
