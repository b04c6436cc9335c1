"""Three hosts in network namespaces, each with its own address and sshd: a real migration
h1 → h2, and a link cut mid-transfer that rolls back and then finishes after link up."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyshard.broker.migration import (
    HostAccess,
    MigrationSettings,
    Migrator,
    MoveRequest,
)
from skyshard.broker.ops_tables import OpsStore
from skyshard.broker.precopy import PrecopyRule
from skyshard.demo_kv import client
from skyshard.transport.access import ACTIONS, AccessPolicy
from skyshard.transport.certificates import MoveGrant
from skyshard.transport.ssh import ConnectionPool, SshSettings
from tests.support.hosts import TestHost, certificate_ssh, shared_transfer_ca, start_host
from tests.support.netns import Namespaces, netns_missing_reason
from tests.support.sshd import sshd_missing_reason

pytestmark = [pytest.mark.root, pytest.mark.slow]

OPERATOR = "ops"
SHARD = "kv-1"
PORT = 8400
SETTINGS = SshSettings(connect_timeout=2, command_timeout=5, attempts=2, backoff=0.1,
                       keepalive=2)  # fmt: skip
MIGRATION = MigrationSettings(PrecopyRule(max_rounds=3, small_bytes=256 << 10),
                              health_timeout=10, stall_timeout=3)  # fmt: skip


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Namespaces, dict]]:
    reason = netns_missing_reason() or sshd_missing_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the network namespace tests: {reason}")
        pytest.skip(reason)
    spaces = Namespaces(3)
    hosts: dict[str, TestHost] = {}
    try:
        spaces.open()
        for index in (1, 2, 3):
            hosts[f"h{index}"] = start_host(
                tmp_path_factory.mktemp(f"h{index}"), f"h{index}", f"prov-{index}",
                address=spaces.address(index), port=22, command_prefix=spaces.exec_prefix(index),
            )  # fmt: skip
        yield spaces, hosts
    finally:
        for host in hosts.values():
            host.sshd.stop()
        _kill_namespace_processes(spaces)
        spaces.close()


def _kill_namespace_processes(spaces: Namespaces) -> None:
    """Shards started inside a namespace outlive sshd; they must go before the namespace."""
    for index in range(1, spaces.count + 1):
        pids = subprocess.run(["ip", "netns", "pids", spaces.name(index)],
                              capture_output=True, text=True).stdout.split()  # fmt: skip
        for pid in pids:
            subprocess.run(["kill", "-9", pid], check=False)


def migrator(network, db: Path, roots: dict[str, Path], pool: ConnectionPool, **kwargs):
    _spaces, hosts = network
    policy = AccessPolicy.from_mapping({OPERATOR: [("*", ACTIONS)]})
    access = {
        host_id: HostAccess(host_id, host.session(policy, OPERATOR, pool), str(roots[host_id]),
                            host.sshd.address, bind="0.0.0.0")
        for host_id, host in hosts.items()
    }  # fmt: skip
    ca = shared_transfer_ca()[0]
    return Migrator(str(db), access, MIGRATION, transfer_ca=ca, **kwargs), access


@pytest.fixture
def placed(network, tmp_path: Path) -> Iterator[dict]:
    spaces, hosts = network
    roots = {}
    for host_id, host in hosts.items():
        roots[host_id] = host.root / tmp_path.name
        roots[host_id].mkdir()
    db = tmp_path / "skyshard.duckdb"
    with ConnectionPool(SETTINGS) as pool:
        _, access = migrator(network, db, roots, pool)
        runtime = access["h1"].runtime()
        runtime.start(SHARD, PORT, generation=1, bind="0.0.0.0")
        runtime.health(SHARD, PORT)
        OpsStore(db).register_route(SHARD, "h1", spaces.address(1), PORT)
        written = {}
        rng = random.Random(3)
        for index in range(6):
            written[f"blob-{index}"] = rng.randbytes(1 << 20)
        for index in range(10):
            written[f"key-{index}"] = f"v{index}".encode()
        for key, value in written.items():
            client.put(spaces.address(1), PORT, key, value)
        yield {"db": db, "roots": roots, "pool": pool, "written": written, "access": access}
        for host_id in roots:
            with contextlib.suppress(Exception):
                access[host_id].runtime().clean(SHARD)


def assert_served_from(network, placed, host_id: str) -> None:
    _spaces, _ = network
    route = OpsStore(placed["db"]).route(SHARD)
    assert route.host_id == host_id
    for other, access in placed["access"].items():
        assert access.runtime().status(SHARD).running == (other == host_id)
    for key, value in placed["written"].items():
        assert client.get(route.address, route.port, key) == value


def test_migrate_h1_to_h2_across_namespaces(network, placed) -> None:
    spaces, hosts = network
    run, _ = migrator(network, placed["db"], placed["roots"], placed["pool"])
    outcome = run.migrate(MoveRequest("mv-ns-1", SHARD, "h1", "h2"))
    assert outcome.status == "done", outcome.error
    assert OpsStore(placed["db"]).route(SHARD).address == spaces.address(2)
    assert_served_from(network, placed, "h2")
    # h3 runs a dependent: it received the new routing file.
    assert b'"host_id": "h2"' in (placed["roots"]["h3"] / "routing.json").read_bytes()
    # The chunks went h1 -> h2 directly, under this move's certificate.
    log = hosts["h2"].sshd.log()
    assert f"Accepted publickey for root from {spaces.address(1)} port" in log
    assert "ED25519-CERT" in log and "ID skyshard-move-mv-ns-1 " in log
    assert not list((placed["roots"]["h1"] / "moves").iterdir())  # the key is gone


def test_link_cut_mid_transfer_rolls_back_then_finishes_after_link_up(network, placed) -> None:
    spaces, _ = network
    cut = threading.Event()

    def on_progress(progress) -> None:
        if progress.bytes_sent > (2 << 20) and not cut.is_set():
            cut.set()
            threading.Thread(target=spaces.set_link, args=(2, False)).start()

    run, _ = migrator(network, placed["db"], placed["roots"], placed["pool"],
                      on_progress=on_progress)  # fmt: skip
    try:
        outcome = run.migrate(MoveRequest("mv-ns-2", SHARD, "h1", "h2"))
    finally:
        spaces.set_link(2, True)
    assert cut.is_set()
    assert outcome.status == "rolled_back", outcome
    assert_served_from(network, placed, "h1")
    retried, _ = migrator(network, placed["db"], placed["roots"], placed["pool"])
    again = retried.migrate(MoveRequest("mv-ns-2", SHARD, "h1", "h2"), retry=True)
    assert again.status == "done", again.error
    assert_served_from(network, placed, "h2")


def test_a_move_certificate_works_only_from_its_source_host(network, placed) -> None:
    """h1's certificate for a transfer to h2, copied to h3 (another host on the same network),
    is refused there; from h1 it reaches only the forced receive command."""
    spaces, hosts = network
    target = placed["access"]["h2"].runtime()
    grant = MoveGrant("mv-ns-3", hosts["h2"].sshd.user, spaces.address(1),
                      target.receive_command(SHARD, "mv-ns-3").line, 600)  # fmt: skip
    for index in (1, 3):
        moves = placed["roots"][f"h{index}"] / "moves" / "mv-ns-3"
        command = [*spaces.exec_prefix(index), *certificate_ssh(moves, hosts["h2"], grant)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)  # fmt: skip
        if index == 3:
            assert result.returncode == 255 and "Permission denied" in result.stderr
        else:
            assert "move mv-ns-3: no transfer expected" in result.stderr, result.stderr
    log = hosts["h2"].sshd.log()
    assert f"not from a permitted source address ({spaces.address(3)})" in log
