"""Input preparation: validate the long `series_id, ts, value` frame and cut it into regular
hourly series, one per id, either one `HourlySeries` at a time or as `SeriesBlock`s: every
series of one length on one (series x hours) matrix, for the vectorized baseline.

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
    hourly = frame.select(
        "series_id",
        hour=utc.dt.epoch("s") // 3600,
        value=pl.when(value.is_finite()).then(value).otherwise(None),
    ).sort("series_id", "hour")
    same_id = pl.col("series_id") == pl.col("series_id").shift()
    repeated = hourly.select((same_id & (pl.col("hour") == pl.col("hour").shift())).any()).item()
    if not repeated:  # already hourly, the usual case: skip the (costly) grouping
        return hourly
    return (
        hourly.group_by("series_id", "hour").agg(pl.col("value").mean()).sort("series_id", "hour")
    )


@dataclass(frozen=True)
class SeriesBlock:
    """Series of one length as rows of a matrix, sorted by id; `observed` holds NaN where an
    hour had no value. Series without any observed value form the block of length 0."""

    series_ids: list[str]
    start_hours: np.ndarray  # int64, hours since the Unix epoch (UTC), one per row
    observed: np.ndarray  # (series, hours)

    @property
    def n_hours(self) -> int:
        return self.observed.shape[1]

    @property
    def end_hours(self) -> np.ndarray:
        return self.start_hours + self.n_hours - 1

    @property
    def filled(self) -> np.ndarray:
        """`observed` with gaps filled by linear interpolation, row by row."""
        filled = self.observed.copy()
        for row in np.flatnonzero(~np.isfinite(filled).all(axis=1)):
            filled[row] = self.series(row).filled
        return filled

    def series(self, row: int) -> HourlySeries:
        return HourlySeries(self.series_ids[row], int(self.start_hours[row]), self.observed[row])


def series_blocks(frame: pl.DataFrame) -> list[SeriesBlock]:
    """The input frame as one `SeriesBlock` per series length, shortest first."""
    hourly = hourly_frame(frame)
    known = hourly.drop_nulls("value")
    spans = (
        known.group_by("series_id")
        .agg(start=pl.col("hour").min(), length=pl.col("hour").max() - pl.col("hour").min() + 1)
        .join(hourly.select("series_id").unique(), on="series_id", how="right")
        .with_columns(pl.col("start").fill_null(0), pl.col("length").fill_null(0))
        .sort("series_id")
        .with_columns(row=pl.int_range(pl.len()).over("length"))
    )
    cells = known.join(spans, on="series_id").select(
        "length", "row", column=pl.col("hour") - pl.col("start"), value="value"
    )
    cells_by_length = cells.partition_by("length", as_dict=True)
    blocks = []
    for (length,), rows in sorted(spans.partition_by("length", as_dict=True).items()):
        observed = np.full((rows.height, length), np.nan)
        if length:
            part = cells_by_length[(length,)]
            observed[part["row"].to_numpy(), part["column"].to_numpy()] = part["value"].to_numpy()
        blocks.append(
            SeriesBlock(
                series_ids=rows["series_id"].to_list(),
                start_hours=rows["start"].to_numpy().astype(np.int64),
                observed=observed,
            )
        )
    return blocks


def split_series(frame: pl.DataFrame) -> list[HourlySeries]:
    """The input frame as one `HourlySeries` per id, sorted by id."""
    found = [b.series(row) for b in series_blocks(frame) for row in range(len(b.series_ids))]
    return sorted(found, key=lambda s: s.series_id)
