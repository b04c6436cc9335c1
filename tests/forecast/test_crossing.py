from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from skyshard.forecast.crossing import Crossing, first_crossing, first_crossings

from .conftest import START


def forecast(series_id: str, yhat: list[float], spread: float = 1.0) -> pl.DataFrame:
    n = len(yhat)
    return pl.DataFrame(
        {
            "series_id": [series_id] * n,
            "ts": [START + timedelta(hours=h + 1) for h in range(n)],
            "yhat": yhat,
            "yhat_upper": [y + spread for y in yhat],
            "train_end": [START] * n,
        }
    )


def test_upper_bound_crosses_before_the_point_forecast():
    rows = forecast("s", [5.0, 6.0, 7.0, 8.0])
    assert first_crossing(rows, 6.5, "s") == Crossing(
        "s", upper_at=START + timedelta(hours=2), point_at=START + timedelta(hours=3), hours_ahead=2
    )


def test_only_the_upper_bound_crosses():
    crossing = first_crossing(forecast("s", [5.0, 6.0]), 6.5, "s")
    assert crossing is not None and crossing.point_at is None and crossing.hours_ahead == 2


def test_no_crossing_returns_none():
    assert first_crossing(forecast("s", [5.0, 6.0]), 7.0, "s") is None


def test_capacity_series_is_compared_hour_by_hour():
    capacity = pl.DataFrame(
        {"ts": [START + timedelta(hours=h) for h in (1, 2, 3)], "capacity": [9.0, 9.0, 3.0]}
    )
    crossing = first_crossing(forecast("s", [5.0, 5.0, 5.0]), capacity, "s")
    assert crossing.upper_at == crossing.point_at == START + timedelta(hours=3)


def test_many_series_at_once():
    rows = pl.concat([forecast("a", [1.0, 9.0]), forecast("b", [1.0, 1.0]), forecast("c", [9.0])])
    capacities = pl.DataFrame({"series_id": ["a", "b", "c"], "capacity": [5.0, 5.0, 5.0]})
    found = first_crossings(rows, capacities)
    assert found["series_id"].to_list() == ["a", "c"]
    assert found["hours_ahead"].to_list() == [2, 1]


def test_bad_arguments_name_what_is_missing():
    rows = forecast("s", [5.0, 6.0])
    with pytest.raises(ValueError, match="no forecast rows for series_id='x'"):
        first_crossing(rows, 1.0, "x")
    short = pl.DataFrame({"ts": [START + timedelta(hours=1)], "capacity": [9.0]})
    with pytest.raises(
        ValueError, match=r"no capacity for 1 forecast hour\(s\), first series_id='s'"
    ):
        first_crossing(rows, short, "s")
    with pytest.raises(ValueError, match="capacities need column 'capacity'"):
        first_crossings(rows, pl.DataFrame({"series_id": ["s"], "cap": [1.0]}))
