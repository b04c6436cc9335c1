"""The demo key-value service as a local process: reads, writes, blobs, restart, torn log."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyshard.demo_kv import client
from skyshard.demo_kv.server import BLOB_THRESHOLD, LOG_NAME
from tests.support.sshd import free_tcp_port


def start_kv(state: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "skyshard.demo_kv", "--state", str(state), "--port", str(port)]
    )
    for _ in range(200):
        try:
            client.checksum("127.0.0.1", port, timeout=1)
            return process
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise AssertionError("demo_kv did not start")


@pytest.fixture
def kv(tmp_path: Path) -> Iterator[tuple[Path, int, list[subprocess.Popen[bytes]]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield tmp_path / "state", free_tcp_port(), processes
    for process in processes:
        process.kill()
        process.wait()


def test_put_get_survive_a_kill_and_restart(kv) -> None:
    state, port, processes = kv
    processes.append(start_kv(state, port))
    big = bytes(range(256)) * (BLOB_THRESHOLD // 256 + 1)
    client.put("127.0.0.1", port, "small", b"hello")
    client.put("127.0.0.1", port, "big/one", big)
    client.put("127.0.0.1", port, "small", b"hello again")
    before = client.checksum("127.0.0.1", port)
    assert before["keys"] == 2
    assert client.get("127.0.0.1", port, "missing") is None
    processes[0].kill()  # acknowledged writes were fsynced: SIGKILL loses nothing
    processes[0].wait()
    processes.append(start_kv(state, port))
    assert client.get("127.0.0.1", port, "small") == b"hello again"
    assert client.get("127.0.0.1", port, "big/one") == big
    assert client.checksum("127.0.0.1", port) == before
    assert len(list((state / "blobs").iterdir())) == 1


def test_torn_last_record_is_dropped_on_start(kv) -> None:
    state, port, processes = kv
    processes.append(start_kv(state, port))
    client.put("127.0.0.1", port, "a", b"1")
    processes[0].kill()
    processes[0].wait()
    with (state / LOG_NAME).open("ab") as log:
        log.write(b'{"k": "b", "v": "MQ')  # a crash mid-append
    processes.append(start_kv(state, port))
    assert client.get("127.0.0.1", port, "a") == b"1"
    assert client.get("127.0.0.1", port, "b") is None
    client.put("127.0.0.1", port, "c", b"3")
    assert (state / LOG_NAME).read_bytes().count(b"\n") == 2
