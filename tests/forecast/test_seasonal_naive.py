from __future__ import annotations

import numpy as np
import pytest

from skyshard.forecast.seasonal_naive import DAILY, WEEKLY, season_for, seasonal_naive


def test_pure_periodic_series_is_forecast_exactly_with_a_zero_width_band():
    cycle = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])
    history = np.tile(cycle, 5)
    band = seasonal_naive(history, horizon=9, season=6, interval=0.9)
    expected = np.tile(cycle, 3)[:9]
    np.testing.assert_array_equal(band.yhat, expected)
    np.testing.assert_array_equal(band.lower, expected)
    np.testing.assert_array_equal(band.upper, expected)


def test_bounds_are_quantiles_of_seasonal_differences_widened_per_season_ahead():
    # Seasonal differences (season 2): 1, 1, 3, -1, 1, 1 → 50 % interval = quartiles 0.5 .. 1.
    history = np.array([0.0, 0.0, 1.0, 1.0, 4.0, 0.0, 5.0, 1.0])
    band = seasonal_naive(history, horizon=3, season=2, interval=0.5)
    np.testing.assert_array_equal(band.yhat, [5.0, 1.0, 5.0])
    # The band always contains the point forecast, so the lower offset is min(q25, 0) = 0.
    np.testing.assert_allclose(band.lower, band.yhat)
    np.testing.assert_allclose(band.upper, band.yhat + np.array([1.0, 1.0, np.sqrt(2.0)]))


def test_season_is_daily_until_three_weeks_then_weekly():
    assert season_for(10) == 1
    assert season_for(DAILY) == DAILY
    assert season_for(3 * WEEKLY - 1) == DAILY
    assert season_for(3 * WEEKLY) == WEEKLY


def test_history_shorter_than_a_season_is_rejected_with_both_lengths():
    with pytest.raises(ValueError, match=r"24 h\), got 5 h"):
        seasonal_naive(np.ones(5), horizon=3, season=24, interval=0.9)
