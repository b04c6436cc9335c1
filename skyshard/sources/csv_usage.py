"""Shard usage from a CSV file or endpoint (source type `csv_usage`).

Columns (header row required, extra columns ignored, order free):

- `timestamp`: ISO 8601 (`2026-11-27T13:05:00Z`, `2026-11-27T14:05:00+01:00`; without an
  offset it is read as UTC) or unix seconds (`1795870800`).
- `shard_id`: the shard's id as in workloads.yaml (lowercase letters, digits, dashes).
- `metric`: `cpu` (cores), `mem_gb` (GB) or `net_mbps` (megabits per second).
- `value`: a finite, non-negative number.

One request: the source `url` itself (a `file://` path to a `.csv` or an http(s) URL).
Rows that fail a check, and repeats of a (shard_id, metric, timestamp), go to quarantine.
"""

from __future__ import annotations

import polars as pl
from pydantic import BaseModel, ConfigDict

from skyshard.config.providers import Source
from skyshard.sources.base import FetchRequest, Parsed, Window
from skyshard.sources.frames import (
    finite_numbers,
    parse_params,
    parse_timestamps,
    read_csv_strings,
    split_rows,
    table_frame,
)
from skyshard.sources.prometheus import ID_PATTERN, SHARD_METRICS

COLUMNS = ("timestamp", "shard_id", "metric", "value")


class CsvUsageParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token_env: str | None = None


class CsvUsageAdapter:
    """Source type `csv_usage`."""

    type = "csv_usage"
    tables = ("shard_usage",)
    params_model = CsvUsageParams

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        parse_params(CsvUsageParams, source.id, source.url, source.params)
        return [FetchRequest("usage", source.url)]

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        text = read_csv_strings(payload, source.id, request.url, COLUMNS)
        typed = text.with_columns(
            ts=parse_timestamps(text["timestamp"]),
            shard=pl.col("shard_id").str.strip_chars(),
            metric_name=pl.col("metric").str.strip_chars(),
            number=finite_numbers(text["value"]),
        )
        good, quarantine = split_rows(
            typed,
            [
                (pl.col("ts").is_null(), "timestamp is not ISO 8601 or unix seconds"),
                (
                    ~pl.col("shard").str.contains(ID_PATTERN).fill_null(False),
                    "shard_id is not a valid id (lowercase letters, digits, dashes)",
                ),
                (
                    ~pl.col("metric_name").is_in(SHARD_METRICS).fill_null(False),
                    f"metric is not one of {', '.join(SHARD_METRICS)}",
                ),
                (pl.col("number").is_null(), "value is not a finite number"),
                (pl.col("number") < 0, "value is negative"),
                (
                    ~pl.struct("shard", "metric_name", "ts").is_first_distinct(),
                    "repeats an earlier row's shard_id, metric and timestamp",
                ),
            ],
            "shard_usage",
        )
        frame = good.select(
            pl.lit(provider_id, pl.String).alias("provider_id"),
            pl.col("shard").alias("shard_id"),
            pl.col("metric_name").alias("metric"),
            "ts",
            pl.col("number").alias("value"),
        )
        return Parsed(
            frames={"shard_usage": table_frame("shard_usage", frame.to_dict())},
            quarantine=quarantine,
        )
