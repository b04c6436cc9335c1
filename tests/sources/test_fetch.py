from __future__ import annotations

import pytest

from skyshard.sources import fetch as fetch_module
from skyshard.sources.base import FetchRequest, PayloadError
from skyshard.sources.fetch import fetch, fetch_for_source, redact
from tests.sources.conftest import make_source


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(fetch_module, "BACKOFF_S", 0.01)


def test_file_url_reads_the_capture(tmp_path):
    capture = tmp_path / "cap.json"
    capture.write_bytes(b"{}")
    assert fetch(capture.as_uri(), 1, 0, "s") == b"{}"


def test_missing_capture_names_the_path(tmp_path):
    url = (tmp_path / "nope.json").as_uri()
    with pytest.raises(PayloadError, match=r"nope\.json does not exist") as caught:
        fetch(url, 1, 0, "src-1")
    assert "'src-1'" in str(caught.value)


def test_relative_file_url_is_rejected():
    with pytest.raises(PayloadError, match="file:///path"):
        fetch("file://captures/x.json", 1, 0, "s")


def test_server_error_is_retried_then_succeeds(http_server):
    http_server.answer(500, b"oops")
    http_server.answer(200, b"payload")
    assert fetch(http_server.url + "/q", 5, 2, "s") == b"payload"
    assert len(http_server.requests) == 2


def test_server_errors_give_up_after_bounded_retries(http_server):
    for _ in range(3):
        http_server.answer(503, b"")
    with pytest.raises(PayloadError, match=r"HTTP 503 .*gave up after 3 attempts"):
        fetch(http_server.url + "/q", 5, 2, "s")
    assert len(http_server.requests) == 3


def test_not_found_is_not_retried(http_server):
    http_server.answer(404, b"")
    http_server.answer(200, b"never")
    with pytest.raises(PayloadError, match="HTTP 404"):
        fetch(http_server.url + "/missing", 5, 3, "s")
    assert len(http_server.requests) == 1


def test_timeout_is_bounded(http_server):
    http_server.answer(200, b"late", delay=5)
    http_server.answer(200, b"late", delay=5)
    with pytest.raises(PayloadError, match=r"timed out after 0.2s \(gave up after 2 attempts\)"):
        fetch(http_server.url + "/slow", 0.2, 1, "s")


def test_truncated_body_is_detected(http_server):
    http_server.answer(200, b"only part", headers={"Content-Length": "100"})
    with pytest.raises(PayloadError, match="truncated"):
        fetch(http_server.url + "/cut", 2, 0, "s")


def test_bearer_token_comes_from_the_named_environment_variable(http_server, monkeypatch):
    monkeypatch.setenv("PROM_TOKEN", "s3cret")
    source = make_source("csv_usage", http_server.url + "/u.csv", token_env="PROM_TOKEN")
    http_server.answer(200, b"ok")
    assert fetch_for_source(source, FetchRequest("usage", source.url)) == b"ok"
    assert http_server.requests[0]["headers"]["Authorization"] == "Bearer s3cret"


def test_unset_token_variable_is_named(monkeypatch):
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    source = make_source("csv_usage", "https://x.example/u.csv", token_env="NO_SUCH_TOKEN")
    with pytest.raises(PayloadError, match="NO_SUCH_TOKEN is not set"):
        fetch_for_source(source, FetchRequest("usage", source.url))


def test_credentials_never_appear_in_errors(http_server):
    http_server.answer(404, b"")
    url = http_server.url.replace("http://", "http://user:hunter2@") + "/q"
    with pytest.raises(PayloadError) as caught:
        fetch(url, 2, 0, "s")
    assert "hunter2" not in str(caught.value)
    assert redact("https://a:b@h.example/p?q=1") == "https://h.example/p?q=1"
