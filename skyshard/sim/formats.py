"""Writers for the real formats the adapters read: Prometheus, Statuspage, AWS spot, CSV."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import orjson
import polars as pl


def prometheus_matrix(
    labels: Sequence[dict], seconds: np.ndarray, values: np.ndarray, decimals: int
) -> bytes:
    """A `query_range` success response: one series per label set, values as strings.

    Built as text column-wise (polars) rather than through per-sample Python objects, which
    keeps large skies fast to generate.
    """
    head = b'{"status":"success","data":{"resultType":"matrix","result":['
    tail = b"]}}"
    if len(labels) == 0:
        return head + tail
    series, steps = values.shape
    stamps = pl.Series(np.tile(seconds.astype(np.int64), series)).cast(pl.String)
    numbers = pl.Series(values.ravel()).round(decimals).cast(pl.String)
    samples = pl.select(
        pl.concat_str([pl.lit("["), stamps, pl.lit(',"'), numbers, pl.lit('"]')])
    ).to_series()
    joined = samples.reshape((series, steps)).arr.join(",").to_list()
    parts = [
        b'{"metric":' + orjson.dumps(label) + b',"values":[' + text.encode() + b"]}"
        for label, text in zip(labels, joined, strict=True)
    ]
    return head + b",".join(parts) + tail


def statuspage_time(moment: datetime, utc_offset_hours: int) -> str:
    """Statuspage's timestamp style: local time of the page with milliseconds and offset."""
    local = moment + timedelta(hours=utc_offset_hours)
    if utc_offset_hours == 0:
        return local.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sign = "+" if utc_offset_hours > 0 else "-"
    return local.strftime("%Y-%m-%dT%H:%M:%S.000") + f"{sign}{abs(utc_offset_hours):02d}:00"


def aws_time(seconds: np.ndarray) -> pl.Series:
    """Timestamps as the AWS CLI prints them: `2026-11-27T23:00:00+00:00`."""
    return (
        pl.Series(seconds.astype(np.int64) * 1_000_000)
        .cast(pl.Datetime("us"))
        .dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    )


def iso_z(seconds: np.ndarray) -> pl.Series:
    return (
        pl.Series(seconds.astype(np.int64) * 1_000_000)
        .cast(pl.Datetime("us"))
        .dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def spot_json(frame: pl.DataFrame) -> bytes:
    """`aws ec2 describe-spot-price-history` output for rows with the five AWS columns."""
    return orjson.dumps({"SpotPriceHistory": frame.to_dicts()}, option=orjson.OPT_INDENT_2)


def csv_bytes(frame: pl.DataFrame) -> bytes:
    return frame.write_csv().encode()
