"""Screening: which series Prophet runs on, and the budget."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from skyshard.forecast import forecast_series
from skyshard.forecast.batch import baseline_block
from skyshard.forecast.config import ForecastConfig
from skyshard.forecast.screen import limits_by_id, risk_of, select_for_prophet
from skyshard.forecast.series import series_blocks

HOURS = 14 * 24


def daily(level: float, amplitude: float, noise: float, seed: int, slope: float = 0.0):
    t = np.arange(HOURS)
    rng = np.random.default_rng(seed)
    cycle = amplitude * np.sin(2 * np.pi * t / 24)
    return level + slope * t + cycle + rng.normal(0, noise, HOURS)


def risk_by_id(frame: pl.DataFrame, limits: pl.DataFrame | None = None) -> dict[str, float]:
    config = ForecastConfig()
    by_limit = limits_by_id(limits)
    scores = {}
    for block in series_blocks(frame):
        base = baseline_block(block, config)
        risk = risk_of(base, by_limit, config.horizon_h, config.capacity_share).score
        scores.update(zip(block.series_ids, risk.tolist(), strict=True))
    return scores


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("noise", [0.5, 2.0, 5.0])
def test_a_planted_growing_series_is_selected_and_flat_ones_are_not(make_frame, seed, noise):
    # Growth of 0.5 per hour on a level of 100: 12 per day, 24 % over a season plus horizon.
    values = {f"flat-{i}": daily(100, 20, noise, seed * 10 + i) for i in range(6)}
    values["growing"] = daily(100, 20, noise, seed, slope=0.5)
    risk = risk_by_id(make_frame(values))
    assert risk["growing"] >= 1.0
    assert all(risk[f"flat-{i}"] < 1.0 for i in range(6))
    ids = sorted(risk)
    selected = select_for_prophet(ids, np.array([risk[s] for s in ids]), np.ones(7, bool), 40)
    assert selected == {"growing"}


def test_a_flat_series_near_its_capacity_is_risky_and_far_from_it_is_not(make_frame):
    values = {"near": daily(70, 5, 1, 1), "far": daily(70, 5, 1, 2), "none": daily(70, 5, 1, 3)}
    limits = pl.DataFrame(
        {"series_id": ["near", "far"], "capacity": [90.0, 400.0], "measures_free": [False] * 2}
    )
    risk = risk_by_id(make_frame(values), limits)
    assert risk["near"] >= 1.0  # upper bound ~77 of 90: above 80 %
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


def test_the_budget_takes_the_riskiest_eligible_series_and_breaks_ties_by_id():
    ids = ["a", "b", "c", "d", "e"]
    scores = np.array([3.0, 5.0, 0.5, 5.0, 9.0])
    eligible = np.array([True, True, True, True, False])
    assert select_for_prophet(ids, scores, eligible, 2) == {"b", "d"}
    assert select_for_prophet(ids, scores, eligible, 3) == {"a", "b", "d"}
    assert select_for_prophet(ids, scores, eligible, 10) == {"a", "b", "d"}  # c is not risky
    assert select_for_prophet(ids, scores, eligible, 0) == set()


def test_prophet_runs_on_the_budget_only_and_the_tables_say_why(make_frame):
    values = {f"growing-{i}": daily(100, 20, 1.0, i, slope=0.5 + 0.2 * i) for i in range(3)}
    values["flat"] = daily(100, 20, 1.0, 9)
    result = forecast_series(make_frame(values), processes=1, prophet_max_series=1)

    summary = {row["series_id"]: row for row in result.summary.iter_rows(named=True)}
    # The steepest growth is the riskiest; the others keep the baseline, recorded as screened.
    assert summary["growing-2"]["reason"] == "best_backtest"
    assert summary["growing-2"]["mase_prophet"] is not None
    for series_id in ("growing-0", "growing-1", "flat"):
        row = summary[series_id]
        assert (row["model"], row["reason"]) == ("seasonal_naive", "screened_low_risk")
        assert row["mase_prophet"] is None
        assert row["mase_chosen"] == row["mase_seasonal_naive"]
    assert summary["growing-0"]["risk_score"] >= 1.0 > summary["flat"]["risk_score"]
    models = result.backtests.group_by("series_id").agg(pl.col("model").unique().sort())
    by_id = dict(models.iter_rows())
    assert by_id["growing-2"] == ["blend", "prophet", "seasonal_naive"]
    assert by_id["flat"] == ["seasonal_naive"]
    screened = result.forecasts.filter(pl.col("series_id") == "flat")
    assert screened["reason"].unique().to_list() == ["screened_low_risk"]


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
                {"series_id": ["a", "a"], "capacity": [1.0, 2.0], "measures_free": [False] * 2}
            ),
            "series_id='a' appears more than once",
        ),
    ],
)
def test_bad_limits_name_the_column_or_series(make_frame, limits, message):
    with pytest.raises(ValueError, match=message):
        forecast_series(make_frame({"a": np.ones(5)}), limits=limits)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"prophet_max_series": -1}, "prophet_max_series must be an integer >= 0, got -1"),
        ({"capacity_share": 0.0}, r"capacity_share must be in \(0, 1\], got 0.0"),
    ],
)
def test_bad_budget_settings_name_the_setting_and_value(make_frame, arguments, message):
    with pytest.raises(ValueError, match=message):
        forecast_series(make_frame({"s": np.ones(5)}), **arguments)
