"""CloudWatch metrics (source type `cloudwatch_csv`): console CSV exports or GetMetricData JSON.

CSV (`params.format: csv`, the default for a `.csv` url): a header row; `params.columns` names
the timestamp and value columns (default `timestamp`, `value`: the `timestamp,value` export)
and optionally an id column; without an id column every row is about `params.id` (a console
export holds one instance's metric).

JSON (`aws cloudwatch get-metric-data ... > file`): `{"MetricDataResults": [{"Id", "Label",
"Timestamps": [...], "Values": [...], "StatusCode"}], "NextToken", "Messages"}`; each result's
`Id` is mapped to a skyshard id by `params.ids` (else the `Id` itself is the id). A result with
`StatusCode: PartialData` or a non-empty `NextToken` is ingested with a partial-capture warning.

Every value is multiplied by `params.scale` (CPUUtilization is percent: `scale: 0.02` turns it
into cores of a 2-vCPU instance) and written to `params.kind` (`shard_usage` or
`host_metrics`) as `params.metric`.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from skyshard.config.providers import Source
from skyshard.sources.base import FetchRequest, Parsed, PayloadError, Window, capture_format
from skyshard.sources.frames import (
    dumps,
    finite_numbers,
    load_json,
    parse_params,
    parse_timestamps,
    read_csv_strings,
    split_rows,
    table_frame,
    text_series,
)
from skyshard.sources.prometheus import HOST_METRICS, ID_PATTERN, SHARD_METRICS


class CsvColumns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp: str = "timestamp"
    value: str = "value"
    id: str | None = None


class CloudWatchParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["shard_usage", "host_metrics"]
    metric: str
    format: Literal["csv", "json"] | None = None
    columns: CsvColumns = CsvColumns()
    id: str | None = Field(default=None, pattern=ID_PATTERN)
    ids: dict[str, str] = Field(default_factory=dict)
    scale: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    token_env: str | None = None

    @model_validator(mode="after")
    def _metric_fits_kind(self) -> CloudWatchParams:
        allowed = SHARD_METRICS if self.kind == "shard_usage" else HOST_METRICS
        if self.metric not in allowed:
            raise ValueError(f"metric for kind {self.kind} must be one of {', '.join(allowed)}")
        return self


class CloudWatchAdapter:
    """Source type `cloudwatch_csv`."""

    type = "cloudwatch_csv"
    tables = ("shard_usage", "host_metrics")
    params_model = CloudWatchParams

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        parse_params(CloudWatchParams, source.id, source.url, source.params)
        return [FetchRequest("metrics", source.url)]

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        params = parse_params(CloudWatchParams, source.id, source.url, source.params)
        fmt = capture_format(params.format, request.url)
        warnings: list[str] = []
        if fmt == "csv":
            text = _csv_samples(payload, source.id, request.url, params)
        else:
            text, warnings = _json_samples(payload, source.id, request.url, params)
        id_column = "shard_id" if params.kind == "shard_usage" else "host_id"
        typed = text.with_columns(
            ts=parse_timestamps(text["timestamp"]),
            number=finite_numbers(text["value"]) * params.scale,
            entity=pl.col("id").str.strip_chars(),
        )
        good, quarantine = split_rows(
            typed,
            [
                (pl.col("_bad").is_not_null(), pl.col("_bad")),
                (pl.col("entity").is_null(), "no id: set params.id or params.columns.id"),
                (pl.col("ts").is_null(), "timestamp is not ISO 8601 or unix seconds"),
                (
                    ~pl.col("entity").str.contains(ID_PATTERN).fill_null(False),
                    pl.format("{} {} is not a valid id", pl.lit(id_column), "entity"),
                ),
                (pl.col("number").is_null(), "value is not a finite number"),
                (~pl.col("number").is_finite(), "value times params.scale is not finite"),
                (pl.col("number") < 0, "value is negative"),
                (
                    ~pl.struct("entity", "ts").is_first_distinct(),
                    f"repeats an earlier row's {id_column} and timestamp",
                ),
            ],
            params.kind,
        )
        frame = good.select(
            pl.lit(provider_id, pl.String).alias("provider_id"),
            pl.col("entity").alias(id_column),
            pl.lit(params.metric, pl.String).alias("metric"),
            "ts",
            pl.col("number").alias("value"),
        )
        return Parsed(
            frames={params.kind: table_frame(params.kind, frame.to_dict())},
            quarantine=quarantine,
            warnings=warnings,
        )


def _csv_samples(
    payload: bytes, source_id: str, url: str, params: CloudWatchParams
) -> pl.DataFrame:
    columns = params.columns
    required = [columns.timestamp, columns.value, *([columns.id] if columns.id else [])]
    text = read_csv_strings(payload, source_id, url, required)
    return text.select(
        pl.col(columns.timestamp).alias("timestamp"),
        pl.col(columns.value).alias("value"),
        (pl.col(columns.id) if columns.id else pl.lit(params.id, pl.String)).alias("id"),
        "_raw",
        pl.lit(None, pl.String).alias("_bad"),
    )


def _json_samples(
    payload: bytes, source_id: str, url: str, params: CloudWatchParams
) -> tuple[pl.DataFrame, list[str]]:
    document = load_json(payload, source_id, url)
    results = document.get("MetricDataResults") if isinstance(document, dict) else None
    if not isinstance(results, list):
        raise PayloadError(
            source_id, url, "expected an object with a 'MetricDataResults' list (GetMetricData)"
        )
    warnings = []
    if document.get("NextToken"):
        warnings.append(f"{url}: partial capture: NextToken is set (more data on another page)")
    ids: list[str | None] = []
    stamps: list[object] = []
    values: list[object] = []
    raws: list[str] = []
    bad: list[str | None] = []

    def reject(raw: str, reason: str) -> None:
        ids.append(None)
        stamps.append(None)
        values.append(None)
        raws.append(raw)
        bad.append(reason)

    for result in results:
        if not isinstance(result, dict):
            reject(dumps(result), "result is not an object")
            continue
        result_id = result.get("Id")
        if result.get("StatusCode") == "PartialData":
            warnings.append(f"{url}: result {result_id!r} is PartialData (a page is missing)")
        times = result.get("Timestamps")
        numbers = result.get("Values")
        if (
            not isinstance(times, list)
            or not isinstance(numbers, list)
            or len(times) != len(numbers)
        ):
            reject(dumps(result)[:1000], "Timestamps and Values are not lists of equal length")
            continue
        mapped = params.ids.get(result_id, result_id) if isinstance(result_id, str) else None
        ids.extend([mapped] * len(times))
        stamps.extend(times)
        values.extend(numbers)
        raws.extend(f"Id={result_id} ts={t} value={v}" for t, v in zip(times, numbers, strict=True))
        bad.extend([None] * len(times))
    frame = pl.DataFrame(
        {
            "timestamp": text_series(stamps),
            "value": text_series(values),
            "id": pl.Series(ids, dtype=pl.String),
            "_raw": pl.Series(raws, dtype=pl.String),
            "_bad": pl.Series(bad, dtype=pl.String),
        }
    )
    return frame, warnings
