"""Start a real `redis-server` on a loopback port, in a temporary folder, without persistence
(the Celery broker of the scale-out tests and benches)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.sshd import free_tcp_port

START_TIMEOUT_S = 10.0


def require_redis() -> None:
    """Skip where Debian's redis-server is missing; fail in CI, which must run the test."""
    if shutil.which("redis-server"):
        return
    reason = "redis-server is missing (apt-get install -y redis-server)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the Celery tests: {reason}")
    pytest.skip(reason)


def _answers_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def running_redis(folder: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """A redis-server answering on `host` (loopback, or a test bridge's address for workers in
    network namespaces); yields its URL and stops it afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_tcp_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--bind", host,
            "--protected-mode", "no",  # no password; reachable only on a test bridge
            "--port", str(port),
            "--dir", str(folder),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(folder / "redis.log"),
        ],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers_ping(host, port):
            if server.poll() is not None or time.monotonic() > deadline:
                log = (folder / "redis.log").read_text() if (folder / "redis.log").exists() else ""
                raise RuntimeError(f"redis-server on port {port} did not start: {log[-2000:]}")
            time.sleep(0.05)
        yield f"redis://{host}:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)
