"""Starting and stopping a sky's embedded hosts: readiness, clean shutdown, clear failures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from skyshard.broker.from_config import broker_policy, host_accesses
from skyshard.config.sky import load_sky
from skyshard.embedded_hosts import HostServerError, running_sky, serve_sky
from skyshard.embedded_hosts.demo import start_demo_shards, verify_demo_shards
from skyshard.transport.commands import RemoteCommand
from skyshard.transport.ssh import ConnectionPool
from tests.embedded_hosts.conftest import SETTINGS, make_sky, shard_processes


def test_background_process_shutdown_stops_every_shard(tmp_path):
    home = tmp_path / "sky"
    sky = make_sky(home)
    roots = [home / "hosts" / host_id for host_id in sky.hosts]
    shards = [s.id for s in sky.shards[:2]]
    with running_sky(home) as running:
        placed = start_demo_shards(sky, home, shards, db=tmp_path / "skyshard.duckdb")
        assert set(placed) == set(shards)
        assert all(
            check.ok for check in verify_demo_shards(shards, db=tmp_path / "skyshard.duckdb")
        )
        assert len(shard_processes(roots)) == 2
    assert running.process.returncode == 0
    assert shard_processes(roots) == []
    assert "shards stopped: 2" in running.log_tail()
    for _, host in sky.hosts.values():
        with pytest.raises(OSError):
            socket.create_connection((host.address, host.port), timeout=1).close()


def _processes_named(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_in_process_servers_stop_cleanly_and_end_running_commands(tmp_path):
    home = tmp_path / "sky"
    sky = make_sky(home)
    servers = serve_sky(sky, home)
    marker = f"{os.getpid()}.{time.monotonic_ns() % 1000}"
    errors: list[BaseException] = []
    try:
        with ConnectionPool(SETTINGS) as pool:
            hosts = host_accesses(sky, sky.hosts, pool, broker_policy(sky))
            session = hosts["cloud-b-h00"].session
            result = session.run(RemoteCommand("echo", ("echo", "hi")), action="read_telemetry")
            assert result.stdout == b"hi\n"

            def hang() -> None:
                try:
                    session.run(RemoteCommand("sleep", ("sleep", marker)), action="read_telemetry")
                except Exception as error:
                    errors.append(error)

            hanging = threading.Thread(target=hang)
            hanging.start()
            deadline = time.monotonic() + 30
            while not _processes_named(f"sleep\0{marker}"):
                assert time.monotonic() < deadline, "the remote sleep never started"
                time.sleep(0.02)
            assert servers.stop() == []
            hanging.join()
    finally:
        servers.stop()
    assert servers.stop() == []  # stopping twice is harmless
    # SIGKILL is delivered asynchronously: give the kernel a bounded while to end the group.
    deadline = time.monotonic() + 10
    while _processes_named(f"sleep\0{marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_named(f"sleep\0{marker}") == []
    assert len(errors) == 1


def test_a_taken_port_names_the_host_and_port(tmp_path):
    home = tmp_path / "sky"
    sky = make_sky(home)
    _, host = sky.hosts["cloud-a-h01"]
    with socket.socket() as blocker:
        blocker.bind((host.address, host.port))
        blocker.listen()
        with pytest.raises(HostServerError, match=f"cloud-a-h01: cannot listen on .*:{host.port}"):
            serve_sky(sky, home)
        with pytest.raises(HostServerError, match="exited with 2"), running_sky(home, timeout=30):
            pass
    assert "cannot listen" in (home / "embedded_hosts.log").read_text()


def test_a_missing_host_key_is_named(tmp_path):
    home = tmp_path / "sky"
    sky = make_sky(home)
    (home / "keys" / "hosts" / "cloud-b-h01").unlink()
    with pytest.raises(
        HostServerError, match=r"cloud-b-h01: no host key at .*keys/hosts/cloud-b-h01"
    ):
        serve_sky(load_sky(home), home)
    (home / "keys" / "hosts" / "cloud-b-h01").write_text("not a key")
    sky = load_sky(home)
    with pytest.raises(HostServerError, match=r"cloud-b-h01: host_key .*cloud-b-h01"):
        serve_sky(sky, home)


def test_cli_refuses_a_folder_without_a_sky(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "skyshard.embedded_hosts", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "providers.yaml" in result.stderr
