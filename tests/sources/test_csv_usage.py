from __future__ import annotations

import datetime as dt

import pytest

from skyshard.sources.base import PayloadError
from skyshard.sources.csv_usage import CsvUsageAdapter
from tests.sources.conftest import WINDOW, make_source

ADAPTER = CsvUsageAdapter()
SOURCE = make_source("csv_usage", "file:///c/usage.csv")


def parse(text: str):
    (request,) = ADAPTER.requests(SOURCE, WINDOW)
    return ADAPTER.parse(request, text.encode(), SOURCE, "colo-a")


def test_rows_in_any_column_order_with_both_timestamp_styles():
    parsed = parse(
        "shard_id,metric,value,timestamp,comment\n"
        "api-000,cpu,1.25,2026-11-27T01:00:00+01:00,x\n"
        "api-000,mem_gb,3,1795737600,\n"
    )
    assert parsed.frames["shard_usage"].rows() == [
        ("colo-a", "api-000", "cpu", dt.datetime(2026, 11, 27), 1.25),
        ("colo-a", "api-000", "mem_gb", dt.datetime(2026, 11, 27), 3.0),
    ]
    assert parsed.quarantine == []


def test_bad_rows_are_quarantined_with_reason_and_text():
    parsed = parse(
        "timestamp,shard_id,metric,value\n"
        "2026-11-27T00:00:00Z,api-000,cpu,1\n"
        "not-a-time,api-000,cpu,1\n"
        "2026-11-27T00:05:00Z,Api 0,cpu,1\n"
        "2026-11-27T00:05:00Z,api-000,disk,1\n"
        "2026-11-27T00:05:00Z,api-000,cpu,NaN\n"
        "2026-11-27T00:05:00Z,api-000,cpu,-2\n"
        "2026-11-27T00:00:00Z,api-000,cpu,7\n"
    )
    assert parsed.frames["shard_usage"]["value"].to_list() == [1.0]
    assert [q.reason for q in parsed.quarantine] == [
        "timestamp is not ISO 8601 or unix seconds",
        "shard_id is not a valid id (lowercase letters, digits, dashes)",
        "metric is not one of cpu, mem_gb, net_mbps",
        "value is not a finite number",
        "value is negative",
        "repeats an earlier row's shard_id, metric and timestamp",
    ]
    assert parsed.quarantine[0].raw_value == "not-a-time,api-000,cpu,1"
    assert {q.target_table for q in parsed.quarantine} == {"shard_usage"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,shard,metric,value\n1,a,cpu,1\n", "lacks required columns"),
        ("timestamp,shard_id,metric,value\n1,a,cpu,1,extra,fields\n", "not a readable CSV"),
        ("", "lacks required columns"),
    ],
)
def test_unusable_csv(text, message):
    with pytest.raises(PayloadError, match=message) as caught:
        parse(text)
    assert "file:///c/usage.csv" in str(caught.value)
    assert "test-csv-usage" in str(caught.value)
