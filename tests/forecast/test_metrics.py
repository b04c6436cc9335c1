from __future__ import annotations

import numpy as np
import pytest

from skyshard.forecast.backtest import rolling_cutoffs, run_folds
from skyshard.forecast.bounds import Band, residual_quantiles
from skyshard.forecast.metrics import coverage, mae, mape, mase, mase_scale

NAN = np.nan


def test_metrics_match_hand_computed_values():
    train = np.array([1.0, 2.0, 3.0, 2.0, 5.0, 2.0])  # season-2 differences 2, 0, 2, 0
    actual = np.array([2.0, 4.0, NAN, 0.0])
    yhat = np.array([3.0, 4.0, 9.0, 1.0])  # errors on known hours: 1, 0, 1
    assert mase_scale(train, season=2) == pytest.approx(1.0)
    assert mae(actual, yhat) == pytest.approx(2 / 3)
    assert mase(actual, yhat, scale=1.0) == pytest.approx(2 / 3)
    assert mase(actual, yhat, scale=0.5) == pytest.approx(4 / 3)
    # Zero actual and missing hour skipped: (|2-3|/2 + |4-4|/4) / 2 = 25 %.
    assert mape(actual, yhat) == pytest.approx(25.0)
    lower = np.array([2.0, 5.0, 0.0, 0.0])
    upper = np.array([3.0, 6.0, 0.0, 2.0])
    assert coverage(actual, lower, upper) == pytest.approx(2 / 3)


def test_metrics_are_none_where_undefined():
    assert mase_scale(np.ones(10), season=2) is None  # zero seasonal-naive error
    assert mase_scale(np.ones(2), season=2) is None  # no pair one season apart
    assert mase(np.array([1.0]), np.array([2.0]), scale=None) is None
    assert mape(np.array([0.0, NAN]), np.array([1.0, 1.0])) is None
    assert coverage(np.array([NAN]), np.array([0.0]), np.array([1.0])) is None
    assert mae(np.array([NAN]), np.array([0.0])) is None


def test_residual_quantiles_include_zero_and_ignore_missing():
    assert residual_quantiles(np.array([NAN, NAN]), 0.9) == (0.0, 0.0)
    assert residual_quantiles(np.array([1.0, 2.0, 3.0]), 0.5) == (0.0, 2.5)
    assert residual_quantiles(np.array([-3.0, -2.0, -1.0]), 0.5) == (-2.5, 0.0)


def test_rolling_cutoffs_are_spaced_by_the_horizon_and_keep_enough_training():
    assert rolling_cutoffs(100, horizon=24, count=3, min_train=48) == [52, 76]
    assert rolling_cutoffs(120, horizon=24, count=3, min_train=48) == [48, 72, 96]
    assert rolling_cutoffs(60, horizon=24, count=3, min_train=48) == []


def test_folds_score_each_model_against_observed_hours_only():
    observed = np.array([0.0, 2.0, 0.0, 2.0, 1.0, NAN, 4.0, 2.0])
    filled = np.array([0.0, 2.0, 0.0, 2.0, 1.0, 2.5, 4.0, 2.0])

    def last_value(train: np.ndarray) -> Band:
        point = np.full(2, train[-1])
        return Band(point, point - 1.0, point + 1.0)

    folds = run_folds(observed, filled, {"last": last_value}, horizon=2, season=2, cutoffs=[4, 6])
    first, second = (f.scores("last") for f in folds)
    # Cut-off 4: train 0 2 0 2 (scale 0 → MASE undefined), forecast 2 2 vs actual 1, NaN.
    assert (first.mase, first.mae, first.n_points, first.coverage) == (None, 1.0, 1, 1.0)
    assert first.mape == pytest.approx(100.0)
    # Cut-off 6: train ends in the filled 2.5; season-2 differences 0, 0, 1 → scale 1/3.
    assert second.mae == pytest.approx((1.5 + 0.5) / 2)
    assert second.mase == pytest.approx(1.0 / (1 / 3))
    assert second.coverage == pytest.approx(0.5)
    assert second.n_points == 2
