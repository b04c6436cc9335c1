"""Choice by backtest (top models, recency, out of sample) and conformal bounds."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast import forecast_series
from skyshard.forecast import select as select_module
from skyshard.forecast.select import choose, conformal_quantiles, split_origins


def errors(*per_model: list[float]) -> np.ndarray:
    """(models, 1 row, origins) from one error list per model."""
    return np.array(per_model, dtype=float)[:, None, :]


def test_the_best_models_are_chosen_best_first(monkeypatch):
    monkeypatch.setattr(select_module, "TOP", 2)
    monkeypatch.setattr(select_module, "RECENCY", 1.0)
    error = errors([3, 3, 3], [1, 2, 1], [2, 2, 2], [1, 1, 1])
    assert choose(error, np.ones(3, bool)).tolist() == [[3, 1]]
    # Ties go to the earlier model; a model missing where the baseline was scored is out.
    error = errors([1, 1], [1, 1], [0, np.nan])
    assert choose(error, np.ones(2, bool)).tolist() == [[0, 1]]
    # Nothing scored: the baseline, in every place.
    assert choose(errors([np.nan], [1.0]), np.ones(1, bool)).tolist() == [[0, 0]]


def test_recent_origins_weigh_more(monkeypatch):
    monkeypatch.setattr(select_module, "TOP", 1)
    error = errors([1, 1, 3], [3, 3, 1])  # model 1 is worse on average, better lately
    monkeypatch.setattr(select_module, "RECENCY", 1.0)
    assert choose(error, np.ones(3, bool)).tolist() == [[0]]
    monkeypatch.setattr(select_module, "RECENCY", 0.3)
    assert choose(error, np.ones(3, bool)).tolist() == [[1]]


def test_the_choice_out_of_sample_sees_only_the_earlier_origins(monkeypatch):
    monkeypatch.setattr(select_module, "TOP", 1)
    early, held = split_origins(7)
    assert early.tolist() == [True] * 4 + [False] * 3 and (held == ~early).all()
    assert split_origins(1)[1].tolist() == [False]
    error = errors([1, 1, 1, 1, 9, 9, 9], [2, 2, 2, 2, 0, 0, 0])
    assert choose(error, early).tolist() == [[0]]
    assert choose(error, np.ones(7, bool)).tolist() == [[1]]


def daily(n_series: int, days: int, seed: int, noise: float = 0.1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(days * 24)
    values = {}
    for i in range(n_series):
        level, sigma = rng.uniform(20, 100), rng.uniform(0.02, 0.2) * noise * 10
        cycle = level * (1 + 0.3 * np.sin(2 * np.pi * (t + i) / 24))
        values[f"shard/s-{i:03d}/cpu"] = cycle + rng.normal(0, sigma * level, t.size)
    return values


def test_held_out_mase_is_the_early_choice_scored_on_the_later_origins(make_frame, monkeypatch):
    monkeypatch.setattr(select_module, "TOP", 1)
    frame = make_frame(daily(4, 14, seed=3))
    result = forecast_series(frame, ForecastPolicy(slow_models=()), processes=1)
    held = (
        result.backtests.filter("held_out")
        .group_by("series_id", "model")
        .agg(pl.col("mase").mean())
    )
    for row in result.summary.iter_rows(named=True):
        (expected,) = held.filter(
            (pl.col("series_id") == row["series_id"]) & (pl.col("model") == row["model_early"])
        )["mase"]
        assert row["mase_held_out"] == pytest.approx(expected)
        assert row["n_cutoffs"] == 7


def test_conformal_quantiles_take_the_finite_sample_ranks():
    residuals = np.arange(1.0, 10.0) - 5.0  # -4 ... 4
    # n = 9, central 0.8: ranks floor(10 * 0.1) = 1 and ceil(10 * 0.9) = 9.
    assert conformal_quantiles(residuals, 0.8) == (-4.0, 4.0)
    assert conformal_quantiles(np.full(5, np.nan), 0.8) is None
    assert conformal_quantiles(np.ones(20), 0.5) == (0.0, 1.0)  # always around the forecast


@pytest.mark.parametrize("interval", [0.8, 0.9])
def test_bounds_cover_the_held_out_hours_at_the_nominal_rate(make_frame, interval):
    """Known Gaussian noise around a daily cycle, every series its own noise level."""
    frame = make_frame(daily(150, 14, seed=11))
    settings = ForecastPolicy(interval=interval, slow_models=())
    summary = forecast_series(frame, settings, processes=1).summary
    points = summary["n_points_held_out"].sum()
    covered = (summary["coverage_held_out"] * summary["n_points_held_out"]).sum() / points
    assert points == 150 * 3 * 24
    assert covered == pytest.approx(interval, abs=0.03)


def test_bounds_stay_at_or_above_zero_for_a_series_that_never_goes_below(make_frame):
    rng = np.random.default_rng(5)
    idle = np.maximum(rng.normal(0.2, 1.0, 14 * 24), 0.0)  # mostly 0, small bursts
    result = forecast_series(make_frame({"shard/idle/cpu": idle}), processes=1)
    assert result.forecasts["yhat_lower"].min() == 0.0
    assert (result.forecasts["yhat"] >= 0.0).all()


def test_each_series_carries_its_own_residual_spread(make_frame):
    """An on/off series (bursts nobody can time) and a steady noisy one, too short for pools
    of their own: both take bounds from the shared pool, which the bursts' tail dominates;
    the spread is each series' own root mean square error."""
    rng = np.random.default_rng(3)
    hours = 21 * 24
    on_off = 1.0 + 8.0 * (rng.random(hours) < 0.1)
    steady = 5.0 + rng.normal(0.0, 1.0, hours)
    frame = make_frame({"shard/burst/cpu": on_off, "shard/steady/mem": steady})
    result = forecast_series(frame, ForecastPolicy(slow_models=()), processes=1)
    rows = result.forecasts.group_by("series_id").agg(
        sd=pl.col("yhat_sd").first(),
        distinct=pl.col("yhat_sd").n_unique(),
        normal_sd=((pl.col("yhat_upper") - pl.col("yhat")) / 1.6449).median(),
    )
    burst, steady_row = rows.sort("series_id").iter_rows(named=True)
    assert burst["distinct"] == steady_row["distinct"] == 1  # one spread over the horizon
    # bursts of 8 with p = 0.1 deviate by 8 * sqrt(0.1 * 0.9) = 2.4 about their mean
    assert 1.5 < burst["sd"] < 3.6
    # the steady series: its own noise (1, plus the forecast's error), not the shared tail
    assert 0.9 < steady_row["sd"] < 1.3
    assert steady_row["sd"] < 0.8 * steady_row["normal_sd"]
