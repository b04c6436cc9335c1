"""The cheap candidates: each one's rule on planted values, and what too little history gives."""

from __future__ import annotations

import numpy as np
import pytest

from skyshard.forecast.candidates import BASELINE, CHEAP, DAY, WEEK, cheap_forecasts

HISTORY = {
    "seasonal_naive": DAY,
    "seasonal_naive_weekly": WEEK,
    "seasonal_naive_drift": 4 * DAY,
    "median_3d": 3 * DAY,
    "median_7d": 7 * DAY,
    "median_14d": 14 * DAY,
    "mean_3d": 3 * DAY,
    "mean_7d": 7 * DAY,
    "median_7d_level": 7 * DAY,
    "median_7d_naive": 7 * DAY,
    "median_3d_level": 3 * DAY,
    "median_14d_level": 14 * DAY,
    "median_7d_trend": 7 * DAY,
    "level_mix": 14 * DAY,
}


def test_every_candidate_has_a_history_rule():
    assert set(HISTORY) == set(CHEAP)


@pytest.mark.parametrize("model", CHEAP)
def test_every_candidate_runs_from_its_history_and_not_before(model):
    rng = np.random.default_rng(0)
    need = HISTORY[model]
    enough = cheap_forecasts(rng.uniform(0, 10, (3, need)), 30)[model]
    assert enough.shape == (3, 30) and np.isfinite(enough).all()
    short = cheap_forecasts(rng.uniform(0, 10, (3, need - 1)), 30)[model]
    assert short.shape == (3, 30)
    assert np.isnan(short).all() or model == BASELINE


def test_the_rules_on_a_planted_week():
    days = np.array([1.0, 1.0, 1.0, 1.0, 50.0, 1.0, 3.0])  # one day-long burst, then a shift
    hour = np.arange(DAY) / 10.0
    train = (days[:, None] + hour[None, :]).reshape(1, -1)
    out = {name: values[0] for name, values in cheap_forecasts(train, DAY).items()}
    np.testing.assert_allclose(out["seasonal_naive"], 3.0 + hour)
    np.testing.assert_allclose(out["median_3d"], 3.0 + hour)  # median of 50, 1, 3
    np.testing.assert_allclose(out["mean_3d"], 18.0 + hour)
    np.testing.assert_allclose(out["median_7d"], 1.0 + hour)  # the burst does not move it
    # The 7-day median profile moved to the last day's level.
    np.testing.assert_allclose(out["median_7d_level"], 3.0 + hour)
    np.testing.assert_allclose(out["median_7d_naive"], 2.0 + hour)
    # Drift: the median day-over-day change of the last 3 days (49, -49 and 2) is 2.
    np.testing.assert_allclose(out["seasonal_naive_drift"], 5.0 + hour)


def test_under_a_day_the_baseline_repeats_the_last_value():
    out = cheap_forecasts(np.array([[4.0, 5.0, 6.0]]), 5)
    np.testing.assert_array_equal(out[BASELINE], [[6.0] * 5])
