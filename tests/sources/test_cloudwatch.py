"""CloudWatch exports, written from the GetMetricData response and console CSV formats."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyshard.sources.base import FetchRequest, PayloadError
from skyshard.sources.cloudwatch import CloudWatchAdapter
from tests.sources.conftest import make_source

ADAPTER = CloudWatchAdapter()
T = "2026-11-27T00:05:00+00:00"


def parse(payload: bytes, url: str = "file:///c/cpu.json", **params):
    params = {"kind": "host_metrics", "metric": "cpu_free", **params}
    source = make_source("cloudwatch_csv", url, **params)
    return ADAPTER.parse(FetchRequest("metrics", url), payload, source, "aws-use1")


def metric_data(results: list, next_token: str | None = None) -> bytes:
    return orjson.dumps({"MetricDataResults": results, "NextToken": next_token, "Messages": []})


RESULT = {
    "Id": "web1",
    "Label": "CPUUtilization",
    "Timestamps": ["2026-11-27T00:10:00+00:00", T],
    "Values": [50.0, 25.0],
    "StatusCode": "Complete",
}


def test_get_metric_data_maps_ids_and_scales():
    parsed = parse(metric_data([RESULT]), ids={"web1": "aws-use1-web1"}, scale=0.04)
    rows = parsed.frames["host_metrics"].select("host_id", "metric", "ts", "value").rows()
    assert rows == [
        ("aws-use1-web1", "cpu_free", dt.datetime(2026, 11, 27, 0, 10), 2.0),
        ("aws-use1-web1", "cpu_free", dt.datetime(2026, 11, 27, 0, 5), 1.0),
    ]
    assert parsed.warnings == []


def test_partial_data_and_next_token_warn():
    partial = dict(RESULT, StatusCode="PartialData")
    parsed = parse(metric_data([partial], next_token="abc"))
    assert len(parsed.warnings) == 2
    assert parsed.frames["host_metrics"].height == 2


def test_bad_results_and_samples_are_quarantined():
    results = [
        dict(RESULT, Values=[1.0]),
        dict(RESULT, Id="web2", Values=["NaN", -3.0]),
        dict(RESULT, Id="WEB 3"),
        "junk",
    ]
    parsed = parse(metric_data(results))
    assert parsed.frames["host_metrics"].height == 0
    assert sorted(q.reason for q in parsed.quarantine) == sorted(
        [
            "Timestamps and Values are not lists of equal length",
            "value is not a finite number",
            "value is negative",
            "host_id WEB 3 is not a valid id",
            "host_id WEB 3 is not a valid id",
            "result is not an object",
        ]
    )


def test_console_csv_with_a_column_mapping():
    csv = (
        "\ufeffTimestamp,Average,Unit\r\n"
        "2026-11-27T00:05:00Z,40,Percent\r\n"
        "2026-11-27T00:05:00Z,41,Percent\r\n"
        "2026-11-27 00:10:00,1e308,Percent\r\n"
        "soon,3,Percent\r\n"
    ).encode()
    parsed = parse(
        csv,
        url="file:///c/cpu.csv",
        kind="shard_usage",
        metric="cpu",
        id="orders-db-000",
        columns={"timestamp": "Timestamp", "value": "Average"},
        scale=0.02,
    )
    frame = parsed.frames["shard_usage"]
    assert frame.select("shard_id", "value").rows() == [
        ("orders-db-000", 0.8),
        ("orders-db-000", 2e306),
    ]  # 2e306 cores is left to the plausibility bounds
    assert sorted(q.reason for q in parsed.quarantine) == [
        "repeats an earlier row's shard_id and timestamp",
        "timestamp is not ISO 8601 or unix seconds",
    ]


@pytest.mark.parametrize(
    ("payload", "params", "message"),
    [
        (b"{", {}, "not valid JSON"),
        (orjson.dumps({"Results": []}), {}, "'MetricDataResults'"),
        (b"time,val\n", {"format": "csv"}, "lacks required columns"),
        (b"[]", {"metric": "cpu"}, "metric for kind host_metrics"),
    ],
)
def test_unusable_payloads_and_params(payload, params, message):
    with pytest.raises(PayloadError, match=message):
        parse(payload, **params)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "Id": st.sampled_from(["web1", "x", "", "Web"]) | st.integers(-(2**63), 2**63 - 1),
                "Timestamps": st.lists(
                    st.sampled_from([T, "2199-12-31T00:00:00Z", "bad", 1795737600]) | st.none(),
                    max_size=4,
                ),
                "Values": st.lists(
                    st.floats() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=4),
                    max_size=4,
                ),
            }
        ),
        max_size=4,
    ),
    st.integers(0, 30),
)
def test_fuzzed_answers_never_raise_anything_but_payload_errors(results, cut):
    payload = metric_data(results)
    for candidate in (payload, payload[: len(payload) - cut]):
        try:
            parsed = parse(candidate)
        except PayloadError:
            continue
        values = parsed.frames["host_metrics"]["value"]
        assert values.is_finite().all() and (values >= 0).all()
