"""Input preparation: validate the long `series_id, ts, value` frame and cut it into regular
hourly series, one per id.

Timestamps are converted to UTC (naive ones are taken as UTC) and floored to the hour; several
values in one hour are averaged, so sub-hourly samples are resampled on the way. NaN, null and
infinite values count as missing. Each series spans its first to its last observed hour; hours
missing inside that span are filled by linear interpolation for fitting (`HourlySeries.filled`),
while backtests score only observed hours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

INPUT_COLUMNS = ("series_id", "ts", "value")


@dataclass(frozen=True)
class HourlySeries:
    """One series on a regular hourly grid; `observed` holds NaN where an hour had no value."""

    series_id: str
    start_hour: int  # hours since the Unix epoch, UTC
    observed: np.ndarray

    @property
    def n_observed(self) -> int:
        return int(np.isfinite(self.observed).sum())

    @property
    def n_filled(self) -> int:
        return len(self.observed) - self.n_observed

    @property
    def filled(self) -> np.ndarray:
        known = np.isfinite(self.observed)
        if known.all() or not known.any():
            return self.observed.copy()
        index = np.arange(len(self.observed))
        return np.interp(index, index[known], self.observed[known])


def validate_frame(frame: pl.DataFrame) -> None:
    """Raise ValueError naming the column and its problem if `frame` breaks the input contract."""
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"forecast input is missing column(s) {missing}; it has {frame.columns}")
    schema = frame.schema
    if schema["series_id"] != pl.String:
        raise ValueError(
            f"forecast input column 'series_id' must be String, got {schema['series_id']}"
        )
    if not isinstance(schema["ts"], pl.Datetime):
        raise ValueError(f"forecast input column 'ts' must be Datetime, got {schema['ts']}")
    if not schema["value"].is_numeric():
        raise ValueError(f"forecast input column 'value' must be numeric, got {schema['value']}")
    null_ids = frame["series_id"].null_count()
    if null_ids:
        raise ValueError(f"forecast input column 'series_id' has {null_ids} null value(s)")
    null_ts = frame["ts"].null_count()
    if null_ts:
        raise ValueError(f"forecast input column 'ts' has {null_ts} null value(s)")


def hourly_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """`series_id, hour, value`: one row per series and hour (epoch hours, UTC), hourly means."""
    validate_frame(frame)
    ts = pl.col("ts")
    utc = ts.dt.replace_time_zone("UTC") if frame.schema["ts"].time_zone is None else ts
    utc = utc.dt.convert_time_zone("UTC")
    value = pl.col("value").cast(pl.Float64)
    return (
        frame.select(
            "series_id",
            hour=utc.dt.epoch("s") // 3600,
            value=pl.when(value.is_finite()).then(value).otherwise(None),
        )
        .group_by("series_id", "hour")
        .agg(pl.col("value").mean())
        .sort("series_id", "hour")
    )


def split_series(frame: pl.DataFrame) -> list[HourlySeries]:
    """The input frame as one `HourlySeries` per id, sorted by id."""
    hourly = hourly_frame(frame)
    result = []
    for (series_id,), part in hourly.partition_by("series_id", as_dict=True).items():
        part = part.drop_nulls("value")
        if part.is_empty():
            result.append(HourlySeries(series_id, 0, np.empty(0)))
            continue
        hours = part["hour"].to_numpy()
        start = int(hours[0])
        observed = np.full(int(hours[-1]) - start + 1, np.nan)
        observed[hours - start] = part["value"].to_numpy()
        result.append(HourlySeries(series_id, start, observed))
    return sorted(result, key=lambda s: s.series_id)
