"""Feed errors a user can act on: the server's own message, the source and the URL."""

from __future__ import annotations

import orjson
import pytest

from skyshard.sources.ingest import collect_source
from tests.sources.conftest import WINDOW, make_source

QUERIES = [{"name": "cpu", "kind": "shard_usage", "metric": "cpu", "query": "rate(x[5m]"}]


@pytest.mark.parametrize(
    ("status", "error_type", "message"),
    [
        (400, "bad_data", 'invalid parameter "query": 1:11: parse error: unclosed left paren'),
        (422, "execution", "query processing would load too many samples into memory"),
    ],
)
def test_prometheus_error_reply_over_http_keeps_prometheus_message(
    http_server, status, error_type, message
):
    # The body Prometheus's HTTP API documents for 400 (bad parameters) and 422 (cannot run).
    body = orjson.dumps({"status": "error", "errorType": error_type, "error": message})
    http_server.answer(status, body, {"Content-Type": "application/json"})
    source = make_source("prometheus", http_server.url, queries=QUERIES)
    source = source.model_copy(update={"retries": 0})
    collected = collect_source(source, "aws", WINDOW)
    assert not collected.ok
    assert f"HTTP {status}" in collected.error
    assert f"{error_type}: {message}" in collected.error
    assert source.id in collected.error and http_server.url in collected.error


def test_plain_text_error_body_is_kept(http_server):
    http_server.answer(404, b"404 page not found\n")
    source = make_source("csv_prices", f"{http_server.url}/prices.csv")
    collected = collect_source(source, "aws", WINDOW)
    assert collected.error.endswith("HTTP 404 Not Found: 404 page not found")


def test_csv_prices_missing_columns_name_source_and_url(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("timestamp,region,price\n2026-11-27T00:00:00Z,fra,0.1\n")
    source = make_source("csv_prices", path.as_uri())
    collected = collect_source(source, "colo", WINDOW, roots=(tmp_path,))
    assert source.id in collected.error and path.as_uri() in collected.error
    assert "lacks required columns ['instance_type', 'cpu_per_instance']" in collected.error


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p / "absent.csv", "does not exist"),
        (lambda p: p, "cannot read capture file"),  # a folder, not a file
    ],
)
def test_csv_prices_unreadable_file_names_source_and_url(tmp_path, make, expected):
    url = make(tmp_path).as_uri()
    source = make_source("csv_prices", url)
    collected = collect_source(source, "colo", WINDOW, roots=(tmp_path,))
    assert source.id in collected.error and url in collected.error
    assert expected in collected.error


def test_file_outside_the_allowed_folders_is_not_read(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("timestamp,region,instance_type,price,cpu_per_instance\n")
    collected = collect_source(
        make_source("csv_prices", path.as_uri()), "colo", WINDOW, roots=(tmp_path / "home",)
    )
    assert "inside SKYSHARD_HOME" in collected.error
