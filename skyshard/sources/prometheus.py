"""Prometheus query answers → shard usage, host metrics and latency probe rows.

Each configured query is one request: over HTTP the API call
`{url}/api/v1/query_range?query=...&start=...&end=...&step=...` (or, for an `instant` query,
`{url}/api/v1/query?query=...&time=<window end>`), for `file://` the capture
`<dir>/<name>.json` holding the same response body. Range answers (`matrix`) and instant
answers (`vector`, one sample per series) are both read.

Real labels are rarely skyshard ids (`instance="10.0.3.7:9100"`, `job="node"`): a query's
`id_map` lists `{match: <regex>, id: <template>}` rules, tried in order against the whole label
value; the first that matches gives the id (`\\1` or `\\g<name>` insert groups). With an
`id_map`, a series whose label no rule matches is quarantined with that reason.
"""

from __future__ import annotations

import io
import re
from datetime import UTC
from typing import Literal
from urllib.parse import urlencode

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from skyshard.config.providers import Source
from skyshard.sources.base import FetchRequest, Parsed, PayloadError, QuarantinedRow, Window
from skyshard.sources.frames import (
    dumps,
    finite_numbers,
    load_json,
    number_series,
    parse_params,
    quarantine_rows,
    table_frame,
    text_series,
    unix_seconds_to_datetime,
)

SHARD_METRICS = ("cpu", "mem_gb", "net_mbps")
HOST_METRICS = tuple(
    f"{resource}_{kind}"
    for resource in ("cpu", "mem_gb", "gpu", "net_mbps")
    for kind in ("capacity", "free")
)
ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_TABLE_OF_KIND = {
    "shard_usage": "shard_usage",
    "host_metrics": "host_metrics",
    "latency": "latency",
}
_DEFAULT_LABEL = {"shard_usage": "shard", "host_metrics": "host"}


class IdRule(BaseModel):
    """A label value matching `match` (a regex, whole value) becomes the id `id` (a template)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str = Field(min_length=1)
    id: str = Field(min_length=1)

    @model_validator(mode="after")
    def _template_fits_pattern(self) -> IdRule:
        try:
            pattern = re.compile(self.match)
        except re.error as exc:
            raise ValueError(f"match {self.match!r} is not a regular expression: {exc}") from None
        for number in re.findall(r"\\(\d+)", self.id):
            if int(number) > pattern.groups:
                raise ValueError(f"id {self.id!r} refers to group {number}; match has fewer")
        for name in re.findall(r"\\g<([^>]*)>", self.id):
            if not name.isdigit() and name not in pattern.groupindex:
                raise ValueError(f"id {self.id!r} refers to group {name!r}; match has none")
        return self

    def apply(self, value: str) -> str | None:
        found = re.fullmatch(self.match, value)
        return found.expand(self.id) if found else None


class PromQuery(BaseModel):
    """One PromQL query and how its series map to raw rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    kind: Literal["shard_usage", "host_metrics", "latency"]
    query: str = Field(min_length=1)
    metric: str | None = None
    label: str | None = None
    src_label: str | None = None
    dst_label: str = "dst_provider"
    id_map: list[IdRule] = Field(default_factory=list)
    instant: bool = False

    def map_id(self, value: str) -> str | None:
        """The skyshard id of a label value: by the first matching rule, or itself without rules."""
        if not self.id_map:
            return value
        return next((i for i in (r.apply(value) for r in self.id_map) if i is not None), None)

    @model_validator(mode="after")
    def _metric_fits_kind(self) -> PromQuery:
        allowed = {"shard_usage": SHARD_METRICS, "host_metrics": HOST_METRICS}.get(self.kind)
        if allowed is not None and self.metric not in allowed:
            raise ValueError(f"metric for kind {self.kind} must be one of {', '.join(allowed)}")
        if self.kind == "latency" and self.metric is not None:
            raise ValueError("latency queries take no metric (values are seconds → rtt_ms)")
        return self

    @property
    def id_label(self) -> str:
        return self.label or _DEFAULT_LABEL[self.kind]


class PrometheusParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    step: int = Field(default=300, ge=1, le=86_400)
    queries: list[PromQuery] = Field(min_length=1)
    token_env: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> PrometheusParams:
        names = [q.name for q in self.queries]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"query names must be unique; repeated: {', '.join(duplicates)}")
        return self


class PrometheusAdapter:
    """Source type `prometheus`."""

    type = "prometheus"
    tables = ("shard_usage", "host_metrics", "latency")
    params_model = PrometheusParams

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        params = parse_params(PrometheusParams, source.id, source.url, source.params)
        base = source.url.rstrip("/")
        if source.url.startswith("file://"):
            return [FetchRequest(q.name, f"{base}/{q.name}.json") for q in params.queries]
        start = window.start.replace(tzinfo=UTC).timestamp()
        end = window.end.replace(tzinfo=UTC).timestamp()
        return [
            FetchRequest(
                q.name,
                f"{base}/api/v1/query?" + urlencode({"query": q.query, "time": end})
                if q.instant
                else f"{base}/api/v1/query_range?"
                + urlencode({"query": q.query, "start": start, "end": end, "step": params.step}),
            )
            for q in params.queries
        ]

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        params = parse_params(PrometheusParams, source.id, source.url, source.params)
        query = next((q for q in params.queries if q.name == request.name), None)
        if query is None:
            raise PayloadError(source.id, request.url, f"no query named {request.name!r}")
        samples = _clean_samples(payload, query)
        quarantine: list[QuarantinedRow] = []
        if samples is None:
            result = _matrix(load_json(payload, source.id, request.url), source.id, request.url)
            samples, quarantine = _checked_samples(result, query, provider_id)
        return _rows(samples, query, provider_id, quarantine)


def _matrix(document: object, source_id: str, url: str) -> list:
    """The `data.result` list of a successful matrix response."""
    if not isinstance(document, dict):
        raise PayloadError(source_id, url, "expected a JSON object with status and data")
    status = document.get("status")
    if status != "success":
        detail = document.get("error") or document.get("errorType") or "no error message"
        raise PayloadError(source_id, url, f"Prometheus status {status!r}: {detail}")
    data = document.get("data")
    if not isinstance(data, dict):
        raise PayloadError(source_id, url, "missing object 'data'")
    kind = data.get("resultType")
    if kind not in ("matrix", "vector"):
        raise PayloadError(
            source_id,
            url,
            f"expected data.resultType 'matrix' (query_range) or 'vector' (query), got {kind!r}",
        )
    result = data.get("result")
    if not isinstance(result, list):
        raise PayloadError(source_id, url, "data.result is not a list")
    if kind == "vector":  # one sample per series: the same shape as a one-sample range
        return [
            {**item, "values": [item.get("value")]} if isinstance(item, dict) else item
            for item in result
        ]
    return result


_SAMPLE_SCHEMA = {
    "src": pl.String,
    "id": pl.String,
    "seconds": pl.Float64,
    "raw_value": pl.String,
    "series_start": pl.Boolean,
}
"""Samples before validation: `src` is the latency source (None otherwise), `id` the shard,
host or latency destination, `series_start` marks the first sample of each series."""


def _clean_samples(payload: bytes, query: PromQuery) -> pl.DataFrame | None:
    """Samples of a well-formed answer whose series all have valid, unique ids; else None.

    Reading straight into columns avoids a Python object per sample, which is what makes
    millions of samples cheap. Anything unusual returns None and the checked path, which
    walks the JSON objects, reports it precisely.
    """
    labels = {_id_label(query), *([query.src_label] if query.src_label else [])}
    schema = {
        "status": pl.String,
        "data": pl.Struct(
            {
                "resultType": pl.String,
                "result": pl.List(
                    pl.Struct(
                        {
                            "metric": pl.Struct({label: pl.String for label in labels}),
                            "values": pl.List(pl.List(pl.String)),
                        }
                    )
                ),
            }
        ),
    }
    try:
        document = pl.read_json(io.BytesIO(payload), schema=schema)
    except Exception:  # any reader complaint: the checked path explains it
        return None
    if document.height != 1:
        return None
    header = document.select(
        "status",
        pl.col("data").struct.field("resultType"),
        pl.col("data").struct.field("result").is_null().alias("no_result"),
    ).row(0)
    if header != ("success", "matrix", False):
        return None
    series = (
        document.select(pl.col("data").struct.field("result"))
        .explode("result")
        .unnest("result")
        .unnest("metric")
    )
    if series.height == 0:
        return pl.DataFrame(schema=_SAMPLE_SCHEMA)
    if series["values"].is_null().any():
        return None
    ids = _mapped(series[_id_label(query)], query)
    src = (
        _mapped(series[query.src_label], query)
        if query.src_label
        else pl.repeat(None, series.height, eager=True)
    )
    pairs = pl.DataFrame({"src": src, "id": ids}, schema={"src": pl.String, "id": pl.String})
    src_valid = src.is_null() if not query.src_label else src.str.contains(ID_PATTERN)
    valid = (ids.str.contains(ID_PATTERN) & src_valid).fill_null(False)
    if not valid.all() or pairs.is_duplicated().any():
        return None
    samples = (
        series.select(
            pl.lit(src, pl.String).alias("src"),
            pl.lit(ids).alias("id"),
            pl.col("values"),
            pl.int_range(pl.len()).alias("series"),
        )
        .filter(pl.col("values").list.len() > 0)
        .explode("values")
        .select(
            pl.col("src").cast(pl.String),
            pl.col("id"),
            pl.when(pl.col("values").list.len() == 2)
            .then(pl.col("values").list.get(0, null_on_oob=True))
            .cast(pl.Float64, strict=False)
            .alias("seconds"),
            pl.col("values").list.get(1, null_on_oob=True).alias("raw_value"),
            pl.col("series").is_first_distinct().alias("series_start"),
        )
    )
    return samples


def _mapped(values: pl.Series, query: PromQuery) -> pl.Series:
    """Label values as skyshard ids (null where the query's id_map has no matching rule)."""
    if not query.id_map:
        return values
    return pl.Series(
        values.name,
        [None if v is None else query.map_id(v) for v in values.to_list()],
        dtype=pl.String,
    )


def _checked_samples(
    result: list, query: PromQuery, provider_id: str
) -> tuple[pl.DataFrame, list[QuarantinedRow]]:
    """Samples from parsed JSON, series with missing or bad ids set aside with a reason."""
    table = _TABLE_OF_KIND[query.kind]
    quarantine: list[QuarantinedRow] = []
    sources: list[str | None] = []
    ids: list[str] = []
    counts: list[int] = []
    all_seconds: list[object] = []
    all_values: list[object] = []
    seen: set[tuple[str | None, str]] = set()
    for item in result:
        key, problem = _series_key(item, query)
        if problem is None and key in seen:
            problem = f"duplicate series for {'/'.join(k for k in key if k)}"
        if problem is not None:
            quarantine.append(QuarantinedRow(table, problem, _describe(item)))
            continue
        seen.add(key)
        seconds, values = _pairs(item["values"])
        sources.append(key[0])
        ids.append(key[1])
        counts.append(len(seconds))
        all_seconds.extend(seconds)
        all_values.extend(values)
    order = np.repeat(np.arange(len(ids)), counts)
    starts = np.zeros(len(order), dtype=bool)
    starts[np.cumsum([0, *counts[:-1]])[np.array(counts, dtype=int) > 0]] = True
    samples = pl.DataFrame(
        {
            "src": pl.Series(sources, dtype=pl.String).gather(order),
            "id": pl.Series(ids, dtype=pl.String).gather(order),
            "seconds": number_series(all_seconds),
            "raw_value": text_series(all_values),
            "series_start": starts,
        },
        schema=_SAMPLE_SCHEMA,
    )
    return samples, quarantine


def _rows(
    samples: pl.DataFrame, query: PromQuery, provider_id: str, quarantine: list[QuarantinedRow]
) -> Parsed:
    """Validate samples column-wise; bad ones go to quarantine with their reason."""
    table = _TABLE_OF_KIND[query.kind]
    seconds = pl.col("seconds")
    previous = seconds.shift(1)
    checked = samples.with_columns(
        ts=unix_seconds_to_datetime(samples["seconds"]),
        value=finite_numbers(samples["raw_value"]),
    ).with_columns(
        reason=pl.when(pl.col("ts").is_null())
        .then(pl.lit("timestamp is not unix seconds in a plausible range"))
        .when(pl.col("value").is_null())
        .then(pl.lit("value is not a finite number"))
        .when(pl.col("value") < 0)
        .then(pl.lit("value is negative"))
        .when(~pl.col("series_start") & previous.is_not_null() & (seconds <= previous))
        .then(pl.lit("timestamp is not after the previous sample of the series"))
    )
    bad = checked.filter(pl.col("reason").is_not_null())
    if bad.height:
        raw = bad.select(
            pl.concat_str(
                [
                    pl.lit(f"{_id_label(query)}="),
                    pl.col("id"),
                    pl.lit(" ts="),
                    pl.col("seconds").cast(pl.String),
                    pl.lit(" value="),
                    pl.col("raw_value"),
                ],
                ignore_nulls=True,
            )
        ).to_series()
        quarantine.extend(quarantine_rows(table, bad["reason"], raw))
        checked = checked.filter(pl.col("reason").is_null())
    return Parsed(frames={table: _frame(checked, query, provider_id)}, quarantine=quarantine)


def _frame(checked: pl.DataFrame, query: PromQuery, provider_id: str) -> pl.DataFrame:
    if query.kind == "latency":
        frame = checked.select(
            pl.col("src").fill_null(provider_id).alias("src_provider_id"),
            pl.col("id").alias("dst_provider_id"),
            "ts",
            (pl.col("value") * 1000).alias("rtt_ms"),
        )
        return table_frame("latency", frame.to_dict())
    id_column = "shard_id" if query.kind == "shard_usage" else "host_id"
    frame = checked.select(
        pl.lit(provider_id, pl.String).alias("provider_id"),
        pl.col("id").alias(id_column),
        pl.lit(query.metric, pl.String).alias("metric"),
        "ts",
        "value",
    )
    return table_frame(_TABLE_OF_KIND[query.kind], frame.to_dict())


def _id_label(query: PromQuery) -> str:
    return query.dst_label if query.kind == "latency" else query.id_label


def _series_key(item: object, query: PromQuery) -> tuple[tuple[str | None, str], str | None]:
    """((src or None, id), problem or None) of one result entry."""
    if not isinstance(item, dict):
        return (None, ""), "series is not an object"
    metric = item.get("metric")
    if not isinstance(metric, dict):
        return (None, ""), "series has no 'metric' label object"
    if not isinstance(item.get("values"), list):
        return (None, ""), "series has no 'values' list"
    src = None
    if query.src_label is not None:
        src, problem = _label_id(query, query.src_label, metric.get(query.src_label))
        if problem:
            return (None, ""), problem
    label = _id_label(query)
    value, problem = _label_id(query, label, metric.get(label))
    return (src, value if problem is None else ""), problem


def _label_id(query: PromQuery, label: str, value: object) -> tuple[str, str | None]:
    """The id a label value maps to, or the problem with it."""
    if value is None:
        return "", f"missing label {label!r}"
    if not isinstance(value, str):
        return "", f"label {label}={value!r} is not a string"
    mapped = query.map_id(value)
    if mapped is None:
        return "", f"label {label}={value!r} matches no id_map rule"
    if re.fullmatch(ID_PATTERN, mapped) is None:
        shown = value if mapped == value else f"{value} → {mapped}"
        return "", f"label {label}={shown!r} is not a valid id (lowercase letters, digits, dashes)"
    return mapped, None


def _pairs(values: list) -> tuple[tuple, tuple]:
    """Timestamps and values of a series; malformed samples become (None, None)."""
    if not values:
        return (), ()
    try:
        return tuple(zip(*values, strict=True))  # type: ignore[return-value]
    except (TypeError, ValueError):
        pairs = [
            (v[0], v[1]) if isinstance(v, list | tuple) and len(v) == 2 else (None, None)
            for v in values
        ]
        return tuple(zip(*pairs, strict=True))  # type: ignore[return-value]


def _describe(item: object) -> str:
    if isinstance(item, dict) and isinstance(item.get("values"), list):
        return f"{dumps(item.get('metric'))} ({len(item['values'])} samples)"
    text = dumps(item)
    return text if len(text) <= 500 else text[:497] + "..."
