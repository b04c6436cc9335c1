from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from skyshard.forecast.series import split_series

from .conftest import START


def test_gaps_are_filled_linearly_and_counted(make_frame):
    values = np.array([1.0, np.nan, np.nan, 4.0, np.inf, 6.0])
    (series,) = split_series(make_frame({"a": values}))
    assert series.n_filled == 3
    np.testing.assert_array_equal(series.filled, [1, 2, 3, 4, 5, 6])
    assert np.isnan(series.observed[[1, 2, 4]]).all()


def test_missing_rows_become_missing_hours_and_edges_are_trimmed():
    frame = pl.DataFrame(
        {
            "series_id": ["a"] * 4,
            "ts": [START + timedelta(hours=h) for h in (0, 1, 4, 5)],
            "value": [None, 1.0, 4.0, float("nan")],
        }
    )
    (series,) = split_series(frame)
    assert series.start_hour == int(START.timestamp()) // 3600 + 1
    np.testing.assert_array_equal(series.filled, [1, 2, 3, 4])


def test_sub_hourly_samples_are_averaged_per_hour_and_times_become_utc():
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2026, 11, 1, 2, 0, tzinfo=plus_two)  # = 00:00 UTC
    frame = pl.DataFrame(
        {
            "series_id": ["b", "b", "b", "a"],
            "ts": [local, local + timedelta(minutes=30), local + timedelta(hours=1), local],
            "value": [1.0, 3.0, 5.0, 7.0],
        }
    )
    a, b = split_series(frame)
    assert (a.series_id, b.series_id) == ("a", "b")
    assert b.start_hour == int(START.timestamp()) // 3600
    np.testing.assert_array_equal(b.observed, [2.0, 5.0])


def test_naive_timestamps_are_taken_as_utc():
    frame = pl.DataFrame({"series_id": ["a"], "ts": [datetime(2026, 11, 1)], "value": [1]})
    (series,) = split_series(frame)
    assert series.start_hour == int(START.timestamp()) // 3600


def test_series_without_any_value_is_kept_empty():
    frame = pl.DataFrame({"series_id": ["a"], "ts": [START], "value": [None]}).cast(
        {"value": pl.Float64}
    )
    (series,) = split_series(frame)
    assert series.n_observed == 0 and len(series.observed) == 0


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pl.DataFrame({"series_id": ["a"], "ts": [START]}), r"missing column\(s\) \['value'\]"),
        (
            pl.DataFrame({"series_id": [1], "ts": [START], "value": [1.0]}),
            "'series_id' must be String, got Int64",
        ),
        (
            pl.DataFrame({"series_id": ["a"], "ts": ["2026-11-01"], "value": [1.0]}),
            "'ts' must be Datetime, got String",
        ),
        (
            pl.DataFrame({"series_id": ["a"], "ts": [START], "value": ["x"]}),
            "'value' must be numeric, got String",
        ),
        (
            pl.DataFrame({"series_id": [None, "a"], "ts": [START, START], "value": [1.0, 2.0]}),
            "'series_id' has 1 null",
        ),
        (
            pl.DataFrame({"series_id": ["a"], "ts": [None], "value": [1.0]}).cast(
                {"ts": pl.Datetime("us", "UTC")}
            ),
            "'ts' has 1 null",
        ),
    ],
)
def test_bad_input_names_the_column_and_problem(frame, message):
    with pytest.raises(ValueError, match=message):
        split_series(frame)
