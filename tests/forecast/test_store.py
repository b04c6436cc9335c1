"""The forecast schema in a real DuckDB file: a refit of some series replaces their rows, keeps
the others', drops series gone from the input, and writes the three tables together."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from skyshard import db
from skyshard.config.policy import ForecastPolicy
from skyshard.forecast import forecast_series
from skyshard.forecast.store import TABLES, read_stored, stored_fingerprints, write_refit

from .conftest import series_frame

TRAINED_AT = datetime(2026, 11, 20, tzinfo=UTC)
DAILY = 10 + 3 * np.sin(np.arange(24 * 10) * 2 * np.pi / 24)


def fit(values: dict[str, np.ndarray]):
    frame = series_frame(values)
    return forecast_series(
        frame, ForecastPolicy(slow_models=()), processes=1, trained_at=TRAINED_AT
    )


def fingerprints(*ids: str, version: str = "v1") -> dict[str, str]:
    return {series_id: f"{series_id}-{version}" for series_id in ids}


def stored(path, key: str) -> pl.DataFrame:
    with db.connect(path, read_only=True) as con:
        return read_stored(con, TABLES[key])


def test_nothing_is_stored_before_the_first_fit(tmp_path):
    with db.connect(tmp_path / "f.duckdb") as con:
        assert read_stored(con, TABLES["summary"]) is None
        assert stored_fingerprints(con) == {}


def test_a_refit_replaces_only_the_changed_series(tmp_path):
    path = tmp_path / "f.duckdb"
    first = fit({"a": DAILY, "b": DAILY, "gone": DAILY})
    with db.connect(path) as con:
        write_refit(con, first, fingerprints("a", "b", "gone"), ["a", "b", "gone"])
    b_before = stored(path, "forecasts").filter(pl.col("series_id") == "b")

    second = fit({"a": DAILY * 2})
    with db.connect(path) as con:
        tables = write_refit(con, second, fingerprints("a", "b"), ["a"])

    for key in TABLES:
        assert stored(path, key).height == tables[key].height
        assert set(stored(path, key)["series_id"]) == {"a", "b"}
    forecasts = stored(path, "forecasts")
    assert forecasts.filter(pl.col("series_id") == "b").equals(b_before)
    assert forecasts.filter(pl.col("series_id") == "a")["yhat"].mean() > 15


def test_a_failed_write_leaves_the_previous_fit(tmp_path):
    path = tmp_path / "f.duckdb"
    with db.connect(path) as con:
        write_refit(con, fit({"a": DAILY}), fingerprints("a"), ["a"])
    before = stored(path, "summary")
    broken = fit({"a": DAILY * 2})
    broken = type(broken)(broken.forecasts, broken.backtests, pl.DataFrame({"x": [object()]}))
    with db.connect(path) as con, pytest.raises(Exception):
        write_refit(con, broken, fingerprints("a"), ["a"])
    assert stored(path, "summary").equals(before)
    assert stored(path, "forecasts")["yhat"].mean() < 15
