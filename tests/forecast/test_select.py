from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyshard.forecast.backtest import Fold
from skyshard.forecast.bounds import Band
from skyshard.forecast.select import (
    BASELINE,
    BLEND,
    PROPHET,
    backtest_error,
    choose_model,
    inverse_error_weight,
)


def band(values) -> Band:
    values = np.asarray(values, dtype=float)
    return Band(values, values - 1.0, values + 1.0)


def fold(actual, baseline, prophet, scale: float | None = 1.0) -> Fold:
    return Fold(
        cutoff=10,
        actual=np.asarray(actual, dtype=float),
        scale=scale,
        bands={BASELINE: band(baseline), PROPHET: band(prophet)},
    )


def test_inverse_error_weights():
    assert inverse_error_weight(1.0, 3.0) == pytest.approx(0.75)
    assert inverse_error_weight(2.0, 2.0) == pytest.approx(0.5)
    assert inverse_error_weight(0.0, 1.0) == 1.0
    assert inverse_error_weight(1.0, 0.0) == 0.0


def test_prophet_worse_than_baseline_picks_the_baseline():
    folds = [fold([1, 2], baseline=[1, 2.5], prophet=[3, 4])]
    assert choose_model(folds).model == BASELINE


def test_equal_errors_keep_the_baseline():
    folds = [fold([1, 2], baseline=[2, 3], prophet=[2, 3])]
    assert choose_model(folds).model == BASELINE


def test_opposite_errors_make_the_blend_win_and_record_its_weight():
    # Baseline 1 above, Prophet 3 below: weights 3/4 and 1/4 cancel the errors exactly.
    folds = [fold([4, 4], baseline=[5, 5], prophet=[1, 1])]
    selection = choose_model(folds)
    assert selection.model == BLEND
    assert selection.blend_weight_prophet == pytest.approx(0.25)
    assert selection.errors[BLEND] == pytest.approx(0.0)


def test_selection_falls_back_to_mae_when_mase_is_undefined():
    folds = [fold([1, 2], baseline=[3, 4], prophet=[1, 2.5], scale=None)]
    error, metric = backtest_error(folds, PROPHET)
    assert (error, metric) == (pytest.approx(0.25), "mae")
    assert choose_model(folds).model == PROPHET


finite = st.integers(-100, 100).map(float)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(finite, min_size=3, max_size=3),
            st.lists(finite, min_size=3, max_size=3),
            st.lists(finite, min_size=3, max_size=3),
            st.one_of(st.none(), st.floats(0.01, 10)),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_chosen_model_is_never_worse_than_the_baseline_in_backtest(cases):
    # Defined and undefined MASE scales are mixed to cover the MAE fallback too.
    folds = [fold(a, b, p, scale) for a, b, p, scale in cases]
    selection = choose_model(folds)
    assert selection.errors[selection.model] <= selection.errors[BASELINE]
    assert backtest_error(selection.folds, selection.model)[0] <= backtest_error(folds, BASELINE)[0]
