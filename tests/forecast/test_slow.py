"""The slow candidates: every one runs at every origin and from the full history."""

from __future__ import annotations

import numpy as np
import pytest

from skyshard.config.policy import SlowModel
from skyshard.forecast.slow import SLOW, slow_backtest


def test_the_policy_offers_exactly_these_models():
    assert set(SlowModel.__args__) == set(SLOW)


@pytest.mark.parametrize("model", SLOW)
def test_every_slow_candidate_forecasts_every_origin(model):
    t = np.arange(10 * 24)
    rng = np.random.default_rng(4)
    history = 50 + 0.05 * t + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, t.size)
    out = slow_backtest([model], history, 490_000, [168, 192, 216], 24)[model]
    assert out.shape == (4, 24) and np.isfinite(out).all()
    # Close to the planted pattern a day ahead of the full history.
    truth = 50 + 0.05 * (t.size + np.arange(24)) + 10 * np.sin(2 * np.pi * np.arange(24) / 24)
    assert np.abs(out[-1] - truth).mean() < 3.0


def test_a_model_that_fails_is_absent_not_fatal(caplog):
    out = slow_backtest(["autoets"], np.array([1.0, np.inf, 2.0] * 20), 0, [30], 6)
    assert np.isnan(out["autoets"]).all()
    assert "forecast model autoets failed" in caplog.text
