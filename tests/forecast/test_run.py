"""End-to-end forecasts with the slow models; kept few and small because every fit costs time."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast import first_crossing, forecast_series

from .conftest import START

TRAINED_AT = datetime(2026, 11, 28, 12, tzinfo=UTC)


def daily_cycle_with_growth(n_hours: int, noise: float, seed: int = 0) -> np.ndarray:
    t = np.arange(n_hours)
    rng = np.random.default_rng(seed)
    return 100.0 + 0.5 * t + 20.0 * np.sin(2 * np.pi * t / 24) + rng.normal(0, noise, n_hours)


def test_planted_daily_cycle_with_growth_crosses_capacity_at_the_right_hour(make_frame):
    history, horizon = 14 * 24, 48
    truth = daily_cycle_with_growth(history + horizon, noise=0.0)[history:]
    # Above every hour of the first forecast day, reached on the second day's rising flank.
    capacity = truth[:24].max() + 6.0
    true_hour = int(np.argmax(truth > capacity)) + 1  # hours after the last training hour
    frame = make_frame({"shard:web-001:cpu": daily_cycle_with_growth(history, noise=1.0)})

    settings = ForecastPolicy(horizon_hours=horizon)
    result = forecast_series(frame, settings, processes=1, trained_at=TRAINED_AT)

    summary = result.summary.row(0, named=True)
    assert summary["model"] not in {"seasonal_naive", "median_7d", "median_3d", "mean_7d"}
    # Out of sample: recent origins weigh most in the choice, and a trend shows there.
    assert summary["mase_held_out"] < summary["mase_seasonal_naive_held_out"]
    crossing = first_crossing(result.forecasts, capacity, "shard:web-001:cpu")
    train_end = START + timedelta(hours=history - 1)
    assert crossing is not None
    predicted_hour = (crossing.point_at - train_end) // timedelta(hours=1)
    assert abs(predicted_hour - true_hour) <= 2
    assert crossing.upper_at <= crossing.point_at


def test_fallbacks_are_recorded_with_their_reason(make_frame):
    rng = np.random.default_rng(2)
    gappy = daily_cycle_with_growth(5 * 24, noise=1.0)
    gappy[[50, 51, 52, 100, 101]] = np.nan
    frame = make_frame(
        {
            "host:aws-use1-h02:free_cpu": np.full(200, 8.0),
            "shard:web-002:mem": rng.normal(10, 1, 50),
            "shard:web-003:cpu": gappy,
            "provider:aws:price": np.full(3, np.nan),
        }
    )
    result = forecast_series(frame, processes=1, trained_at=TRAINED_AT)

    summary = {row["series_id"]: row for row in result.summary.iter_rows(named=True)}
    assert summary["host:aws-use1-h02:free_cpu"]["reason"] == "constant"
    assert summary["shard:web-002:mem"]["reason"] == "too_short"
    assert summary["provider:aws:price"]["reason"] == "no_data"
    assert summary["provider:aws:price"]["model"] is None
    for series_id in ("host:aws-use1-h02:free_cpu", "shard:web-002:mem"):
        assert summary[series_id]["model"] == "seasonal_naive"
    assert summary["shard:web-003:cpu"]["reason"] == "best_backtest"
    assert summary["shard:web-003:cpu"]["n_filled"] == 5

    forecasts = result.forecasts
    assert forecasts.columns == [
        "series_id", "ts", "yhat", "yhat_lower", "yhat_upper", "yhat_sd", "model", "reason",
        "trained_at", "train_start", "train_end", "interval", "input_fingerprint",
    ]  # fmt: skip
    assert forecasts["series_id"].unique().sort().to_list() == [
        "host:aws-use1-h02:free_cpu",
        "shard:web-002:mem",
        "shard:web-003:cpu",
    ]
    constant = forecasts.filter(pl.col("series_id") == "host:aws-use1-h02:free_cpu")
    assert constant["yhat"].to_list() == [8.0] * 24
    assert constant["yhat_upper"].to_list() == [8.0] * 24
    assert forecasts.select(pl.col("yhat", "yhat_lower", "yhat_upper").is_finite().all()).row(0)
    assert (forecasts["yhat_lower"] <= forecasts["yhat"]).all()
    assert (forecasts["yhat"] <= forecasts["yhat_upper"]).all()

    # Backtest horizons cover hours 48-71, 72-95 and 96-119; only observed hours are scored;
    # the later half of the origins is held out.
    gappy_backtest = result.backtests.filter(pl.col("series_id") == "shard:web-003:cpu")
    rows = gappy_backtest.filter(pl.col("model") == "seasonal_naive").sort("cutoff")
    assert rows["n_points"].to_list() == [21, 24, 22]
    assert rows["held_out"].to_list() == [False, False, True]
    # A candidate needing three days of history has none at the first origin.
    rows = gappy_backtest.filter(pl.col("model") == "median_3d").sort("cutoff")
    assert rows["n_points"].to_list() == [24, 22]


def test_worker_processes_give_the_same_tables_as_one_process(make_frame):
    values = {
        f"shard:web-{i:03d}:cpu": daily_cycle_with_growth(4 * 24, 3.0, seed=i) for i in range(3)
    }
    # A random walk, where the seasonal-naive baseline is hard to beat.
    values["shard:web-009:net"] = 50 + np.cumsum(np.random.default_rng(9).normal(0, 5, 96))
    values["host:aws-use1-h02:free_cpu"] = np.full(96, 4.0)
    frame = make_frame(values)
    progress: list[tuple[int, int]] = []

    settings = ForecastPolicy(slow_models=("autotheta", "prophet"), slow_budget_seconds=600)
    single = forecast_series(frame, settings, processes=1, trained_at=TRAINED_AT)
    multi = forecast_series(
        frame,
        settings,
        processes=2,
        trained_at=TRAINED_AT,
        on_progress=lambda d, t: progress.append((d, t)),
    )

    assert_frame_equal(single.forecasts, multi.forecasts)
    assert_frame_equal(single.backtests, multi.backtests)
    assert_frame_equal(single.summary, multi.summary)
    # Progress counts the series the slow models ran on: every one but the constant.
    assert progress[-1] == (4, 4)
    assert [done for done, _ in progress] == [1, 2, 3, 4]
    assert single.summary["slow_models_run"].sum() == 4


def test_forecasting_prints_nothing():
    code = (
        "import numpy as np, polars as pl\n"
        "from datetime import datetime, timedelta\n"
        "from skyshard.forecast import forecast_series\n"
        "t = np.arange(96)\n"
        "frame = pl.DataFrame({'series_id': ['s'] * 96,\n"
        "    'ts': [datetime(2026, 11, 1) + timedelta(hours=int(h)) for h in t],\n"
        "    'value': 5 + np.sin(t / 3.8) + 0.01 * t})\n"
        "assert forecast_series(frame, processes=1).summary['model'][0] is not None\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (done.stdout, done.stderr) == ("", "")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"horizon_hours": 0}, "horizon_hours\n  Input should be greater than or equal to 1"),
        ({"horizon_hours": 2.5}, "horizon_hours\n  Input should be a valid integer"),
        ({"interval": 1.0}, "interval\n  Input should be less than 1"),
        ({"backtest_cutoffs": 0}, "backtest_cutoffs\n  Input should be greater than or equal"),
        ({"slow_models": ("arima",)}, "slow_models.0\n  Input should be 'autoets', 'mstl'"),
        ({"slow_budget_seconds": -1}, "slow_budget_seconds\n  Input should be greater than"),
        ({"capacity_share": 0.0}, "capacity_share\n  Input should be greater than 0"),
    ],
)
def test_bad_settings_name_the_setting_and_value(arguments, message):
    with pytest.raises(ValueError, match=message):
        ForecastPolicy(**arguments)


def test_bad_process_count_is_refused(make_frame):
    with pytest.raises(ValueError, match="forecast processes must be at least 1, got 0"):
        forecast_series(make_frame({"s": np.ones(5)}), processes=0)
