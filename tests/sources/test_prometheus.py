from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from skyshard.sources.base import FetchRequest, PayloadError
from skyshard.sources.prometheus import PrometheusAdapter
from tests.sources.conftest import WINDOW, make_source, matrix

T0 = 1795737600  # 2026-11-27T00:00:00Z
QUERIES = [
    {"name": "shard_cpu", "kind": "shard_usage", "metric": "cpu", "query": "sum by (shard) (x)"},
    {"name": "host_cpu_free", "kind": "host_metrics", "metric": "cpu_free", "query": "y"},
    {"name": "rtt", "kind": "latency", "query": "probe_duration_seconds", "dst_label": "target"},
]
ADAPTER = PrometheusAdapter()


def parse(name: str, payload: bytes, **params):
    source = make_source("prometheus", "file:///captures/p", queries=QUERIES, **params)
    return ADAPTER.parse(
        FetchRequest(name, f"file:///captures/p/{name}.json"), payload, source, "cloud-a"
    )


def test_file_requests_read_one_capture_per_query():
    source = make_source("prometheus", "file:///captures/p/", queries=QUERIES)
    assert [r.url for r in ADAPTER.requests(source, WINDOW)] == [
        f"file:///captures/p/{q['name']}.json" for q in QUERIES
    ]


def test_http_requests_call_query_range_with_window_and_step():
    source = make_source("prometheus", "https://prom.example:9090", queries=QUERIES, step=60)
    request = ADAPTER.requests(source, WINDOW)[0]
    parts = urlsplit(request.url)
    assert parts.path == "/api/v1/query_range"
    query = parse_qs(parts.query)
    assert query["query"] == ["sum by (shard) (x)"]
    assert float(query["start"][0]) == T0
    assert float(query["end"][0]) == T0 + 86400
    assert query["step"] == ["60"]


def test_shard_usage_rows():
    payload = matrix(
        [
            {"metric": {"shard": "api-000"}, "values": [[T0, "1.5"], [T0 + 300, "2"]]},
            {"metric": {"shard": "api-001", "job": "x"}, "values": [[T0 + 0.5, "0.25"]]},
        ]
    )
    parsed = parse("shard_cpu", payload)
    frame = parsed.frames["shard_usage"]
    assert frame.columns == ["provider_id", "shard_id", "metric", "ts", "value"]
    assert frame.rows() == [
        ("cloud-a", "api-000", "cpu", dt.datetime(2026, 11, 27), 1.5),
        ("cloud-a", "api-000", "cpu", dt.datetime(2026, 11, 27, 0, 5), 2.0),
        ("cloud-a", "api-001", "cpu", dt.datetime(2026, 11, 27, 0, 0, 0, 500000), 0.25),
    ]
    assert parsed.quarantine == []


def test_latency_seconds_become_milliseconds_from_this_provider():
    payload = matrix([{"metric": {"target": "edge-a"}, "values": [[T0, "0.0125"]]}])
    frame = parse("rtt", payload).frames["latency"]
    assert frame.rows() == [("cloud-a", "edge-a", dt.datetime(2026, 11, 27), 12.5)]


def test_bad_samples_are_quarantined_with_reasons():
    payload = matrix(
        [
            {
                "metric": {"shard": "api-000"},
                "values": [
                    [T0, "NaN"],
                    [T0 + 300, "+Inf"],
                    [T0 + 600, "lots"],
                    [T0 + 900, "-1"],
                    [T0 + 1200, "3"],
                    [T0 + 1200, "4"],
                    ["yesterday", "1"],
                    [T0 + 1500, "5"],
                ],
            }
        ]
    )
    parsed = parse("shard_cpu", payload)
    assert parsed.frames["shard_usage"]["value"].to_list() == [3.0, 5.0]
    reasons = [q.reason for q in parsed.quarantine]
    assert reasons == [
        "value is not a finite number",
        "value is not a finite number",
        "value is not a finite number",
        "value is negative",
        "timestamp is not after the previous sample of the series",
        "timestamp is not unix seconds in a plausible range",
    ]
    assert parsed.quarantine[0].raw_value.endswith("value=NaN")
    assert "shard=api-000" in parsed.quarantine[0].raw_value


def test_bad_series_are_quarantined_and_the_rest_kept():
    payload = matrix(
        [
            {"metric": {"job": "x"}, "values": [[T0, "1"]]},
            {"metric": {"shard": "API_0"}, "values": [[T0, "1"]]},
            {"metric": {"shard": "api-000"}, "values": [[T0, "1"]]},
            {"metric": {"shard": "api-000"}, "values": [[T0, "2"]]},
            "not a series",
        ]
    )
    parsed = parse("shard_cpu", payload)
    assert parsed.frames["shard_usage"].height == 1
    reasons = [q.reason for q in parsed.quarantine]
    assert reasons[0] == "missing label 'shard'"
    assert "not a valid id" in reasons[1]
    assert reasons[2] == "duplicate series for api-000"
    assert reasons[3] == "series is not an object"
    assert all(q.target_table == "shard_usage" for q in parsed.quarantine)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"<html>502 Bad Gateway</html>", "not valid JSON"),
        (b'{"status": "success", "data"', "not valid JSON"),
        (
            b'{"status":"error","errorType":"bad_data","error":"parse error at char 4"}',
            "parse error at char 4",
        ),
        (
            orjson.dumps({"status": "success", "data": {"resultType": "scalar", "result": []}}),
            "'matrix'",
        ),
        (orjson.dumps({"status": "success", "data": {"resultType": "matrix"}}), "data.result"),
        (b"[1, 2, 3]", "expected a JSON object"),
    ],
)
def test_unusable_payloads_raise_naming_source_and_url(payload, message):
    with pytest.raises(PayloadError) as caught:
        parse("shard_cpu", payload)
    assert message in str(caught.value)
    assert "test-prometheus" in str(caught.value)
    assert "file:///captures/p/shard_cpu.json" in str(caught.value)


def test_invalid_params_name_the_field():
    source = make_source(
        "prometheus",
        "file:///p",
        queries=[{"name": "q", "kind": "shard_usage", "metric": "disk", "query": "x"}],
    )
    with pytest.raises(PayloadError, match=r"params\.queries\[0\]") as caught:
        ADAPTER.requests(source, WINDOW)
    assert "'disk'" in str(caught.value) or "metric" in str(caught.value)


def test_unknown_request_name_is_a_payload_error():
    with pytest.raises(PayloadError, match="no query named 'other'"):
        parse("other", matrix([]))


NODE_QUERY = {
    "name": "node_cpu_free",
    "kind": "host_metrics",
    "metric": "cpu_free",
    "query": 'sum by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
    "label": "instance",
    "id_map": [
        {"match": r"10\.0\.0\.5:9100", "id": "aws-use1-web1"},
        {"match": r"(web\d+)\.prod\.internal:\d+", "id": r"aws-use1-\1"},
    ],
}


def parse_node(payload: bytes, query=NODE_QUERY):
    source = make_source("prometheus", "file:///captures/p", queries=[query])
    return ADAPTER.parse(
        FetchRequest(query["name"], "file:///captures/p/node_cpu_free.json"),
        payload,
        source,
        "aws-use1",
    )


def node_series(instance: str, values: list) -> dict:
    return {"metric": {"instance": instance, "job": "node"}, "values": values}


def test_id_map_turns_real_labels_into_ids():
    payload = matrix(
        [
            node_series("10.0.0.5:9100", [[T0, "3.5"]]),
            node_series("web2.prod.internal:9100", [[T0, "1.25"]]),
            node_series("db9.other:9100", [[T0, "7"]]),
        ]
    )
    parsed = parse_node(payload)
    assert parsed.frames["host_metrics"].select("host_id", "value").rows() == [
        ("aws-use1-web1", 3.5),
        ("aws-use1-web2", 1.25),
    ]
    (problem,) = parsed.quarantine
    assert problem.reason == "label instance='db9.other:9100' matches no id_map rule"


def test_two_labels_mapping_to_one_id_are_a_duplicate():
    payload = matrix(
        [
            node_series("10.0.0.5:9100", [[T0, "3.5"]]),
            node_series("web1.prod.internal:9100", [[T0, "1"]]),
        ]
    )
    parsed = parse_node(payload)
    assert parsed.frames["host_metrics"].height == 1
    assert parsed.quarantine[0].reason == "duplicate series for aws-use1-web1"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"match": "(", "id": "x"}, "not a regular expression"),
        ({"match": "(a)", "id": r"x-\2"}, "refers to group 2"),
        ({"match": "(?P<h>a)", "id": r"x-\g<host>"}, "refers to group 'host'"),
    ],
)
def test_bad_id_map_rules_are_refused_with_the_field(rule, message):
    with pytest.raises(PayloadError, match=rf"params\.queries\[0\]\.id_map\[0\].*{message}"):
        parse_node(matrix([]), dict(NODE_QUERY, id_map=[rule]))


def test_instant_vector_answers():
    vector = orjson.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [
                    {"metric": {"instance": "10.0.0.5:9100"}, "value": [T0, "2.5"]},
                    {"metric": {"instance": "web3.prod.internal:9100"}, "value": [T0, "NaN"]},
                    {"metric": {"instance": "web4.prod.internal:9100"}},
                ],
            },
        }
    )
    parsed = parse_node(vector)
    assert parsed.frames["host_metrics"].select("host_id", "ts", "value").rows() == [
        ("aws-use1-web1", dt.datetime(2026, 11, 27), 2.5)
    ]
    assert sorted(q.reason for q in parsed.quarantine) == [
        "timestamp is not unix seconds in a plausible range",
        "value is not a finite number",
    ]


def test_instant_query_calls_the_query_endpoint_at_the_window_end():
    source = make_source(
        "prometheus", "https://prom.example", queries=[dict(NODE_QUERY, instant=True)]
    )
    (request,) = ADAPTER.requests(source, WINDOW)
    parts = urlsplit(request.url)
    assert parts.path == "/api/v1/query"
    assert float(parse_qs(parts.query)["time"][0]) == T0 + 86400
