"""The global LightGBM candidate: what it learns across series, that it is reproducible, that
short histories give no forecast rather than an error, and the policy switch."""

from __future__ import annotations

import numpy as np
import pytest

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast import forecast_series
from skyshard.forecast.candidates import DAY, cheap_forecasts
from skyshard.forecast.global_model import (
    GLOBAL,
    MAX_GROUPS,
    MIN_HISTORY,
    global_backtest,
    global_forecasts,
)
from skyshard.forecast.series import series_blocks

START_HOUR = 24 * 20_000  # a Monday, 00:00 UTC, in epoch hours


def alternating_days(series: int, days: int, seed: int = 0) -> np.ndarray:
    """Rows whose days alternate between two daily profiles shared by every series (each at
    its own level and amplitude, with noise): tomorrow repeats the day before yesterday, which
    no cheap candidate (yesterday, medians and means of the same hour) reproduces."""
    rng = np.random.default_rng(seed)
    hour = np.arange(DAY)
    shapes = np.stack([np.sin(2 * np.pi * hour / DAY), np.cos(4 * np.pi * hour / DAY)])
    pattern = np.concatenate([shapes[d % 2] for d in range(days)])
    level = rng.uniform(10, 100, (series, 1))
    amplitude = rng.uniform(0.2, 0.5, (series, 1)) * level
    noise = rng.normal(0, 0.02, (series, days * DAY)) * level
    return level + amplitude * pattern[None, :] + noise


def test_it_learns_a_shape_shared_across_series_that_no_cheap_candidate_follows():
    values = alternating_days(60, 15)
    train, actual = values[:, : 14 * DAY], values[:, 14 * DAY :]
    starts = np.full(len(values), START_HOUR)
    mae = np.abs(global_forecasts(train, DAY, starts) - actual).mean()
    cheap = cheap_forecasts(train, DAY)
    best_cheap = min(np.abs(yhat - actual).mean() for yhat in cheap.values())
    assert mae < 0.5 * best_cheap


def test_it_reproduces_a_plain_daily_cycle():
    hour = np.arange(10 * DAY)
    levels = np.linspace(5, 50, 40)[:, None]
    values = levels * (2 + np.sin(2 * np.pi * hour / DAY))[None, :]
    yhat = global_forecasts(values, DAY)
    expected = levels * (2 + np.sin(2 * np.pi * np.arange(10 * DAY, 11 * DAY) / DAY))[None, :]
    assert np.abs(yhat - expected).mean() < 0.05 * np.abs(expected).mean()


def test_the_same_input_gives_the_same_forecast():
    values = alternating_days(30, 10, seed=3)
    starts = np.full(len(values), START_HOUR)
    first = global_forecasts(values, DAY, starts)
    np.testing.assert_array_equal(first, global_forecasts(values.copy(), DAY, starts))


@pytest.mark.parametrize("hours", [0, 1, DAY, MIN_HISTORY - 1])
def test_too_short_a_history_gives_nan_not_an_error(hours):
    values = np.random.default_rng(1).uniform(1, 2, (5, hours))
    yhat = global_forecasts(values, DAY)
    assert yhat.shape == (5, DAY) and np.isnan(yhat).all()


def test_one_series_of_the_minimum_history_is_enough():
    values = np.tile(np.arange(DAY, dtype=float), MIN_HISTORY // DAY)[None, :]
    assert np.isfinite(global_forecasts(values, DAY)).all()


def test_the_candidate_is_in_the_backtest_only_when_the_policy_turns_it_on(make_frame):
    values = alternating_days(6, 10, seed=2)
    frame = make_frame({f"shard/s{i}/cpu": row for i, row in enumerate(values)})
    on = forecast_series(frame, ForecastPolicy(slow_models=(), global_model=True))
    off = forecast_series(frame, ForecastPolicy(slow_models=(), global_model=False))
    assert GLOBAL in set(on.backtests["model"]) and GLOBAL not in set(off.backtests["model"])
    # The shared shape makes it the best single candidate there, so every series keeps it.
    assert all(GLOBAL in model.split("+") for model in on.summary["model"])


def test_short_and_long_series_together_forecast_without_error(make_frame):
    long = alternating_days(6, 10, seed=4)
    frame = make_frame(
        {
            **{f"shard/s{i}/cpu": row for i, row in enumerate(long)},
            "shard/young/cpu": long[0, : MIN_HISTORY - 5],
            "shard/gappy/cpu": np.where(np.arange(10 * DAY) % 7 == 0, np.nan, long[1]),
        }
    )
    result = forecast_series(frame, ForecastPolicy(slow_models=(), global_model=True))
    young = result.backtests.filter(series_id="shard/young/cpu")
    assert GLOBAL not in set(young.drop_nulls("mase")["model"])
    assert result.forecasts.filter(series_id="shard/young/cpu")["yhat"].is_finite().all()
    assert result.summary.height == 8


def test_a_padded_short_row_gets_nan_and_does_not_disturb_the_others():
    values = alternating_days(20, 10, seed=5)
    padded = values.copy()
    padded[0, : -MIN_HISTORY + 1] = np.nan
    yhat = global_forecasts(padded, DAY)
    assert np.isnan(yhat[0]).all() and np.isfinite(yhat[1:]).all()


def test_series_ending_in_the_same_hour_share_a_model_and_the_largest_groups_get_one(make_frame):
    # Group g ends g hours before the latest: the first has four series, the others one each,
    # so the one ending earliest is the group left out.
    ends = [0, 0, 0, 0, *range(1, MAX_GROUPS + 1)]
    values = alternating_days(len(ends), 6, seed=6)
    frame = make_frame(
        {f"shard/s{i}/cpu": values[i, : values.shape[1] - e] for i, e in enumerate(ends)}
    )
    blocks = series_blocks(frame)
    runs = global_backtest(blocks, ForecastPolicy(global_model=True))
    ran = {
        sid: bool(np.isfinite(r[GLOBAL][row, -1]).all())
        for block, r in zip(blocks, runs, strict=True)
        for row, sid in enumerate(block.series_ids)
    }
    assert sum(ran.values()) == len(ends) - 1
    assert not ran[f"shard/s{len(ends) - 1}/cpu"]
    assert global_backtest(blocks, ForecastPolicy(global_model=False)) == [{} for _ in blocks]
