from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast.fingerprint import input_fingerprints, series_to_refit


@pytest.fixture
def frame(make_frame):
    rng = np.random.default_rng(1)
    return make_frame({"a": rng.normal(size=50), "b": rng.normal(size=50), "c": np.ones(30)})


def test_same_input_gives_the_same_fingerprints_whatever_the_row_order(frame):
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)
    assert input_fingerprints(frame) == input_fingerprints(shuffled)
    assert len(set(input_fingerprints(frame).values())) == 3


def test_only_the_changed_series_gets_a_new_fingerprint(frame):
    before = input_fingerprints(frame)
    index = frame.with_row_index()
    changed = index.with_columns(
        value=pl.when(pl.col("index") == 60).then(pl.col("value") + 1e-9).otherwise("value")
    ).drop("index")
    assert series_to_refit(input_fingerprints(changed), before) == ["b"]


def test_new_hour_new_series_and_shifted_time_change_fingerprints(frame, make_frame):
    before = input_fingerprints(frame)
    appended = pl.concat([frame, make_frame({"c": np.ones(31)}).tail(1), make_frame({"d": [1.0]})])
    assert series_to_refit(input_fingerprints(appended), before) == ["c", "d"]
    shifted = frame.with_columns(
        ts=pl.when(pl.col("series_id") == "a")
        .then(pl.col("ts") + timedelta(hours=1))
        .otherwise("ts")
    )
    assert series_to_refit(input_fingerprints(shifted), before) == ["a"]


def test_missing_value_differs_from_any_value_and_nan_equals_null(frame):
    as_null = frame.with_columns(
        value=pl.when(pl.col("value") == 1.0).then(None).otherwise("value")
    )
    as_nan = frame.with_columns(
        value=pl.when(pl.col("value") == 1.0).then(float("nan")).otherwise("value")
    )
    # Every hour of "c" missing: the series keeps no hour at all, in both spellings.
    assert input_fingerprints(as_null) == input_fingerprints(as_nan)
    assert series_to_refit(input_fingerprints(as_null), input_fingerprints(frame)) == ["c"]


def test_forecast_settings_are_part_of_the_fingerprint(frame):
    before = input_fingerprints(frame)
    assert input_fingerprints(frame, ForecastPolicy(horizon_hours=24)) == before
    assert series_to_refit(input_fingerprints(frame, ForecastPolicy(horizon_hours=48)), before) == [
        "a",
        "b",
        "c",
    ]
