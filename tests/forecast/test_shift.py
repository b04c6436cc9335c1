"""Level-shift re-levelling of the cheap candidates, and selection on short histories."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast import forecast_series
from skyshard.forecast.candidates import BASELINE, DAY, cheap_forecasts
from skyshard.forecast.shift import level_shifts, shifted_forecasts

HOURS = 15 * DAY


def daily(rng: np.random.Generator, hours: int = HOURS, amplitude: float = 1.0) -> np.ndarray:
    """A daily cycle around 4 with 5 % multiplicative noise."""
    t = np.arange(hours)
    return (4 + amplitude * 3 * np.sin(2 * np.pi * t / DAY)) * rng.lognormal(0, 0.05, hours)


def moved(values: np.ndarray, hours: int = 6) -> dict[str, float]:
    """Per candidate, how far re-levelling moved its mean forecast."""
    row = values[None]
    plain = cheap_forecasts(row, DAY)
    shifted = shifted_forecasts(row, row, row.shape[1], DAY, hours, 0.9)
    return {m: float(np.mean(shifted[m] - plain[m])) for m in plain}


def test_a_step_re_levels_the_medians_by_about_the_step():
    values = daily(np.random.default_rng(1))
    values[-8:] += 3.0  # 8 hours at a new level, 3 above the old
    shift = moved(values)
    for model in ("median_3d", "median_7d", "median_14d", "mean_7d"):
        assert 2.0 < shift[model] < 4.0, model
    assert shift[BASELINE] == 0.0  # the reference stays the plain daily seasonal naive


def test_a_drop_re_levels_down():
    values = daily(np.random.default_rng(2))
    values[-8:] -= 2.5
    assert moved(values)["median_7d"] < -1.5


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_predicted_daily_peaks_do_not_re_level(seed):
    # a strong daily peak every day: the models forecast it, so their residuals stay small
    values = daily(np.random.default_rng(seed), amplitude=1.2)
    assert all(v == 0.0 for v in moved(values).values())


def test_a_spike_shorter_than_the_window_does_not_re_level():
    values = daily(np.random.default_rng(6))
    values[-4:] *= 2.5  # 4 hours of burst, the window is 6
    assert all(v == 0.0 for v in moved(values).values())
    assert moved(values, hours=4)["median_7d"] > 0  # a 4-hour window takes it for a shift


def test_no_re_levelling_when_turned_off():
    values = daily(np.random.default_rng(7))
    values[-8:] += 3.0
    assert all(v == 0.0 for v in moved(values, hours=0).values())


def test_what_the_model_caught_up_is_not_added_again():
    recent = np.array([[5.0, 5.0, 5.0, 5.0]])
    before = np.full((1, DAY), 1.0)  # 4 below the actuals four hours running
    band = np.array([[-1.0, 1.0]])
    assert level_shifts(recent, before, np.full((1, DAY), 1.0), band)[0] == pytest.approx(4.0)
    assert level_shifts(recent, before, np.full((1, DAY), 4.0), band)[0] == pytest.approx(1.0)
    assert level_shifts(recent, before, np.full((1, DAY), 6.0), band)[0] == 0.0
    gap = recent.copy()
    gap[0, 1] = np.nan  # a missing hour breaks the run
    assert level_shifts(gap, before, np.full((1, DAY), 1.0), band)[0] == 0.0


def test_forecast_series_follows_a_step(make_frame):
    values = daily(np.random.default_rng(8), HOURS + DAY)
    values[HOURS - 10 :] *= 1.8  # the step, 10 hours before the forecast starts
    future = values[HOURS:]

    def error(hours: int) -> float:
        settings = ForecastPolicy(slow_models=(), level_shift_hours=hours)
        result = forecast_series(make_frame({"s": values[:HOURS]}), settings, processes=1)
        return float(np.abs(result.forecasts["yhat"].to_numpy() - future).mean())

    # additive: the re-levelled trough is right, a multiplicative peak still under-forecast
    assert error(6) < 0.75 * error(0)


def test_a_short_history_chooses_beyond_the_baseline(make_frame):
    # 5 days: at the first origins (2 days of training) only the daily seasonal naive runs;
    # the medians stand in with it there and are chosen on where they ran
    rng = np.random.default_rng(9)
    series = {f"s{i}": daily(rng, 5 * DAY) * rng.lognormal(0, 0.3, 5 * DAY) for i in range(4)}
    settings = ForecastPolicy(slow_models=(), level_shift_hours=0)
    summary = forecast_series(make_frame(series), settings, processes=1).summary
    assert summary.filter(pl.col("model") != BASELINE).height > 0
    # the backtest table still shows each model only where it ran
    backtests = forecast_series(make_frame(series), settings, processes=1).backtests
    assert backtests.filter(pl.col("model") == "median_3d")["cutoff"].n_unique() < (
        backtests.filter(pl.col("model") == BASELINE)["cutoff"].n_unique()
    )


def test_a_shift_window_longer_than_the_horizon_is_refused():
    with pytest.raises(ValueError, match="level_shift_hours 12 is more than horizon_hours 6"):
        ForecastPolicy(horizon_hours=6, level_shift_hours=12)
