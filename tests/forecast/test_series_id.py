"""Series ids: one format, built and parsed by `SeriesId`, row by row or as polars columns."""

from __future__ import annotations

import polars as pl
import pytest

from skyshard.forecast.series_id import (
    SeriesId,
    SeriesKind,
    parse_series_ids,
    series_group,
    series_id_expr,
)

IDS = [
    (SeriesId.shard("web-000", "cpu"), "shard/web-000/cpu"),
    (SeriesId.host("aws-1", "mem_gb"), "host/aws-1/mem_gb_free"),
    (SeriesId.capacity("aws"), "capacity/aws/cpu"),
    (SeriesId.price("aws", "us-east-1"), "price/aws/us-east-1"),
]


@pytest.mark.parametrize(("series", "text"), IDS)
def test_build_and_parse_round_trip(series, text):
    assert str(series) == text
    assert SeriesId.parse(text) == series


def test_columns_build_and_parse_like_the_type():
    frame = pl.DataFrame({"owner": ["a-1", "b-2"], "name": ["cpu", "net_mbps"]})
    built = frame.select(series_id_expr(SeriesKind.HOST, "owner", pl.col("name")))
    assert built["series_id"].to_list() == ["host/a-1/cpu_free", "host/b-2/net_mbps_free"]
    parsed = built.select(parse_series_ids())
    assert parsed.rows() == [("host", "a-1", "cpu"), ("host", "b-2", "net_mbps")]
    for text, row in zip(built["series_id"], parsed.rows(), strict=True):
        series = SeriesId.parse(text)
        assert (series.kind.value, series.owner, series.name) == row


@pytest.mark.parametrize(
    "text", ["shard/web-000", "vm/1/cpu", "host/h1/cpu", "shard/a/b/c", "shard//cpu"]
)
def test_a_bad_id_is_named(text):
    with pytest.raises(ValueError, match=f"series id {text!r}|got ''"):
        SeriesId.parse(text)


def test_groups_pool_alike_series_and_any_other_id_is_accepted():
    assert series_group("shard/web-000/cpu") == series_group("shard/db-001/cpu") == "shard/cpu"
    assert series_group("price/aws/us-east-1") == series_group("price/gcp/eu") == "price/*"
    assert series_group("host/h1/cpu_free") == "host/cpu"
    assert series_group("vm:1019:cpu") == "other"
