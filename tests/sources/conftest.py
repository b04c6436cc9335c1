from __future__ import annotations

import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from skyshard.config.providers import Source
from skyshard.sources.base import Window

WINDOW = Window(datetime(2026, 11, 27), datetime(2026, 11, 28))


def make_source(type_: str, url: str, **params) -> Source:
    return Source(id=f"test-{type_.replace('_', '-')}", type=type_, url=url, params=params)


def matrix(result: list) -> bytes:
    return orjson.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})


class Server:
    """A loopback HTTP server answering from a queue of (status, body, headers, delay)."""

    def __init__(self) -> None:
        self.responses: list[tuple] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append({"path": self.path, "headers": dict(self.headers)})
                status, body, headers, delay = server.responses.pop(0)
                if delay:
                    server.release.wait(delay)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def log_message(self, *args) -> None:
                pass

        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, status: int, body: bytes = b"", headers=None, delay: float = 0) -> None:
        self.responses.append((status, body, headers or {}, delay))


@pytest.fixture
def http_server():
    server = Server()
    yield server
    server.release.set()
    server.httpd.shutdown()
    server.httpd.server_close()
