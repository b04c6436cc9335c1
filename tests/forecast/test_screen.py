"""Screening: the order the slow models run in, the time budget, and the limits."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast import forecast_series
from skyshard.forecast.candidates import CHEAP
from skyshard.forecast.global_model import GLOBAL
from skyshard.forecast.screen import limits_by_id, priority_order, risk_of
from skyshard.forecast.series import series_blocks

HOURS = 14 * 24


def daily(level: float, amplitude: float, noise: float, seed: int, slope: float = 0.0):
    t = np.arange(HOURS)
    rng = np.random.default_rng(seed)
    cycle = amplitude * np.sin(2 * np.pi * t / 24)
    return level + slope * t + cycle + rng.normal(0, noise, HOURS)


def risk_by_id(frame: pl.DataFrame, limits: pl.DataFrame | None = None) -> dict[str, float]:
    """Risk with a plain forecast: the last day repeated, bounds +-10 % of the level, MASE 1."""
    settings = ForecastPolicy()
    by_limit = limits_by_id(limits)
    scores = {}
    for block in series_blocks(frame):
        yhat = block.filled[:, -settings.horizon_hours :]
        spread = 0.1 * np.abs(yhat).mean(axis=1, keepdims=True)
        mase = np.ones(len(block.series_ids))
        risk = risk_of(
            block,
            yhat - spread,
            yhat + spread,
            mase,
            by_limit,
            settings.horizon_hours,
            settings.capacity_share,
        ).score
        scores.update(zip(block.series_ids, risk.tolist(), strict=True))
    return scores


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("noise", [0.5, 2.0, 5.0])
def test_a_planted_growing_series_comes_first_and_flat_ones_are_not_risky(make_frame, seed, noise):
    # Growth of 0.5 per hour on a level of 100: 12 per day, 24 % over a season plus horizon.
    values = {f"flat-{i}": daily(100, 20, noise, seed * 10 + i) for i in range(6)}
    values["growing"] = daily(100, 20, noise, seed, slope=0.5)
    risk = risk_by_id(make_frame(values))
    assert risk["growing"] >= 1.0
    assert all(risk[f"flat-{i}"] < 1.0 for i in range(6))
    ids = sorted(risk)
    assert priority_order(ids, np.array([risk[s] for s in ids]))[0] == "growing"


def test_a_flat_series_near_its_capacity_is_risky_and_far_from_it_is_not(make_frame):
    values = {"near": daily(70, 5, 1, 1), "far": daily(70, 5, 1, 2), "none": daily(70, 5, 1, 3)}
    limits = pl.DataFrame(
        {"series_id": ["near", "far"], "capacity": [90.0, 400.0], "measures_free": [False] * 2}
    )
    risk = risk_by_id(make_frame(values), limits)
    assert risk["near"] >= 1.0  # upper bound ~82 of 90: above 80 %
    assert risk["far"] < 1.0
    assert risk["none"] < 1.0


def test_free_capacity_running_low_is_risky(make_frame):
    values = {"host/h1/cpu_free": daily(6, 1, 0.2, 1), "host/h2/cpu_free": daily(50, 1, 0.2, 2)}
    limits = pl.DataFrame(
        {"series_id": list(values), "capacity": [64.0, 64.0], "measures_free": [True, True]}
    )
    risk = risk_by_id(make_frame(values), limits)
    assert risk["host/h1/cpu_free"] >= 1.0  # ~90 % of the host in use
    assert risk["host/h2/cpu_free"] < 1.0


def test_the_order_is_riskiest_first_with_ties_to_the_smaller_id():
    ids = ["e", "a", "b", "c", "d"]
    scores = np.array([9.0, 3.0, 5.0, 0.0, 5.0])
    assert priority_order(ids, scores) == ["e", "b", "d", "a", "c"]


def test_slow_models_run_on_every_series_within_the_budget_and_none_without(make_frame):
    values = {f"growing-{i}": daily(100, 20, 1.0, i, slope=0.5 + 0.2 * i) for i in range(3)}
    values["flat"] = daily(100, 20, 1.0, 9)
    values["constant"] = np.full(HOURS, 3.0)
    frame = make_frame(values)
    settings = ForecastPolicy(slow_models=("autotheta",), slow_budget_seconds=600)
    progress: list[tuple[int, int]] = []
    result = forecast_series(
        frame, settings, processes=1, on_progress=lambda d, t: progress.append((d, t))
    )

    ran = dict(result.summary.select("series_id", "slow_models_run").iter_rows())
    assert ran == {f"growing-{i}": True for i in range(3)} | {"flat": True, "constant": False}
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    models = dict(
        result.backtests.group_by("series_id").agg(pl.col("model").unique().sort()).iter_rows()
    )
    # Every candidate but those needing 14 days, more history than any origin has.
    fortnight = {"median_14d", "median_14d_level", "level_mix"}
    assert models["flat"] == sorted([*(set(CHEAP) - fortnight), GLOBAL, "autotheta"])

    nothing = forecast_series(frame, ForecastPolicy(slow_budget_seconds=0), processes=1)
    assert not nothing.summary["slow_models_run"].any()
    assert set(nothing.backtests["model"]) <= {*CHEAP, GLOBAL}


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (
            pl.DataFrame({"series_id": ["a"], "capacity": [1.0]}),
            r"missing column\(s\) \['measures_free'\]",
        ),
        (
            pl.DataFrame({"series_id": ["a"], "capacity": [0.0], "measures_free": [False]}),
            "capacity must be a positive finite number, got 0.0 for series_id='a'",
        ),
        (
            pl.DataFrame({"series_id": ["a"], "capacity": [None], "measures_free": [False]}),
            "got None for series_id='a'",
        ),
        (
            pl.DataFrame(
                {"series_id": ["a"], "capacity": [1.0], "measures_free": [False], "ceiling": [-1]}
            ),
            "ceiling must be a positive finite number, got -1.0 for series_id='a'",
        ),
        (
            pl.DataFrame(
                {"series_id": ["a", "a"], "capacity": [1.0, 2.0], "measures_free": [False] * 2}
            ),
            "series_id='a' appears more than once",
        ),
    ],
)
def test_bad_limits_name_the_column_or_series(make_frame, limits, message):
    with pytest.raises(ValueError, match=message):
        forecast_series(make_frame({"a": np.ones(5)}), limits=limits)


def test_a_ceiling_clips_the_bounds(make_frame):
    values = {"near": daily(70, 5, 3, 1), "free": daily(70, 5, 3, 1)}
    limits = pl.DataFrame(
        {
            "series_id": ["near", "free"],
            "capacity": [80.0, 72.0],
            "measures_free": [False, True],
            "ceiling": [72.0, None],  # a free-capacity series' ceiling is its capacity
        }
    )
    result = forecast_series(make_frame(values), ForecastPolicy(slow_models=()), limits=limits)
    upper = dict(result.forecasts.group_by("series_id").agg(pl.col("yhat_upper").max()).rows())
    assert upper == {"near": 72.0, "free": 72.0}
