"""The vectorized baseline against the per-series implementation, on random series."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from skyshard.forecast import forecast_series
from skyshard.forecast.batch import baseline_block
from skyshard.forecast.config import ForecastConfig
from skyshard.forecast.fingerprint import series_fingerprint
from skyshard.forecast.pipeline import forecast_one
from skyshard.forecast.series import series_blocks, split_series
from skyshard.forecast.tables import series_tables

from .conftest import series_frame

TRAINED_AT = datetime(2026, 11, 28, 12, tzinfo=UTC)


def random_series(rng: np.random.Generator, n: int) -> np.ndarray:
    kind = rng.integers(4)
    t = np.arange(n)
    if kind == 0:
        values = rng.normal(50, 5, n)
    elif kind == 1:
        values = 20 + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, n)
    elif kind == 2:
        values = np.round(rng.exponential(3, n))  # zeros: MAPE skips them
    else:
        values = np.full(n, 7.0)  # constant
    gaps = rng.random(n) < rng.choice([0.0, 0.05, 0.3])
    values[gaps] = np.nan
    return values


def random_frame(seed: int, n_series: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    # Lengths around the thresholds: no cut-off, daily season, weekly season.
    lengths = rng.choice([5, 30, 60, 96, 120, 520], size=n_series)
    values = {f"s{i:03d}": random_series(rng, n) for i, n in enumerate(lengths)}
    values["empty"] = np.full(4, np.nan)
    return series_frame(values)


def per_series_tables(frame: pl.DataFrame, config: ForecastConfig):
    results = [
        forecast_one(s, config, series_fingerprint(s, config), with_prophet=False)
        for s in split_series(frame)
    ]
    return series_tables(results, config, TRAINED_AT)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("horizon", "interval", "cutoffs"), [(24, 0.9, 3), (12, 0.8, 2), (48, 0.5, 4)]
)
def test_vectorized_baseline_equals_the_per_series_path(seed, horizon, interval, cutoffs):
    frame = random_frame(seed, 12)
    config = ForecastConfig(horizon, interval, cutoffs, prophet_max_series=0)

    vectorized = forecast_series(
        frame, horizon, interval, cutoffs, prophet_max_series=0, trained_at=TRAINED_AT
    )
    reference = per_series_tables(frame, config)

    assert_frame_equal(vectorized.forecasts, reference.forecasts, rel_tol=1e-9)
    assert_frame_equal(vectorized.backtests, reference.backtests, rel_tol=1e-9)
    # The risk score comes from screening, which the per-series path does not do.
    assert_frame_equal(
        vectorized.summary.drop("risk_score"), reference.summary.drop("risk_score"), rel_tol=1e-9
    )
    reasons = set(vectorized.summary["reason"])
    assert reasons <= {"no_data", "constant", "too_short", "screened_low_risk"}


def test_blocks_group_series_by_length_and_keep_ids_sorted(make_frame):
    frame = make_frame({"b": np.ones(30), "a": np.arange(30.0), "c": np.arange(50.0)})
    blocks = series_blocks(frame)
    assert [(b.n_hours, b.series_ids) for b in blocks] == [(30, ["a", "b"]), (50, ["c"])]
    np.testing.assert_array_equal(blocks[0].observed[0], np.arange(30.0))


def test_baseline_block_refuses_a_block_without_hours(make_frame):
    (empty,) = series_blocks(make_frame({"x": np.full(3, np.nan)}))
    with pytest.raises(ValueError, match="at least one observed hour"):
        baseline_block(empty, ForecastConfig())
