"""When a demand forecast first exceeds a capacity: the earliest hour whose upper bound (and,
separately, whose point forecast) is above it. Used to predict bottlenecks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

CROSSING_SCHEMA = {
    "series_id": pl.String,
    "upper_at": pl.Datetime("us", "UTC"),
    "point_at": pl.Datetime("us", "UTC"),
    "hours_ahead": pl.Int64,
}


@dataclass(frozen=True)
class Crossing:
    series_id: str
    upper_at: datetime  # first hour with yhat_upper > capacity
    point_at: datetime | None  # first hour with yhat > capacity, if any
    hours_ahead: int  # hours from the end of training to `upper_at`


def first_crossings(forecasts: pl.DataFrame, capacities: pl.DataFrame) -> pl.DataFrame:
    """One row per series whose upper bound exceeds its capacity within the forecast:
    `series_id, upper_at, point_at, hours_ahead`.

    `forecasts` has the forecast table's columns `series_id, ts, yhat, yhat_upper, train_end`;
    `capacities` has `series_id, capacity` (a constant per series) or `series_id, ts,
    capacity` (a capacity series, which must cover every forecast hour).
    """
    for column in ("series_id", "capacity"):
        if column not in capacities.columns:
            raise ValueError(f"capacities need column {column!r}; they have {capacities.columns}")
    keys = ["series_id", "ts"] if "ts" in capacities.columns else ["series_id"]
    joined = forecasts.join(capacities.select(*keys, "capacity"), on=keys, how="left")
    uncovered = joined.filter(pl.col("capacity").is_null())
    if not uncovered.is_empty():
        first = uncovered.row(0, named=True)
        raise ValueError(
            f"no capacity for {uncovered.height} forecast hour(s), "
            f"first series_id={first['series_id']!r} ts={first['ts']}"
        )
    over_upper = pl.col("yhat_upper") > pl.col("capacity")
    over_point = pl.col("yhat") > pl.col("capacity")
    return (
        joined.group_by("series_id")
        .agg(
            upper_at=pl.col("ts").filter(over_upper).min(),
            point_at=pl.col("ts").filter(over_point).min(),
            train_end=pl.col("train_end").first(),
        )
        .drop_nulls("upper_at")
        .with_columns(
            hours_ahead=((pl.col("upper_at") - pl.col("train_end")).dt.total_hours()),
        )
        .select(CROSSING_SCHEMA.keys())
        .cast(CROSSING_SCHEMA)
        .sort("series_id")
    )


def first_crossing(
    forecast: pl.DataFrame, capacity: float | pl.DataFrame, series_id: str
) -> Crossing | None:
    """The first crossing of one series' forecast over `capacity` (a number, or a frame
    `ts, capacity`), or None when its upper bound stays at or below capacity."""
    forecast = forecast.filter(pl.col("series_id") == series_id)
    if forecast.is_empty():
        raise ValueError(f"no forecast rows for series_id={series_id!r}")
    if isinstance(capacity, pl.DataFrame):
        capacities = capacity.with_columns(series_id=pl.lit(series_id))
    else:
        capacities = pl.DataFrame({"series_id": [series_id], "capacity": [float(capacity)]})
    found = first_crossings(forecast, capacities)
    if found.is_empty():
        return None
    return Crossing(**found.row(0, named=True))
