"""The runtime's addressing on a namespace host of the topology (its own non-loopback address,
a non-root login, the system python3): a shard bound to the host's configured address starts,
passes its health check there (nothing answers on the host's 127.0.0.1) and serves clients
there; the cutover's handover starts and health-checks the restored copy on that address."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from skyshard.demo_kv import client
from skyshard.runtime.client import ShardRuntime
from skyshard.runtime.transfer import SendMode, send_between_hosts
from skyshard.transport.access import ACTIONS, AccessPolicy
from skyshard.transport.ssh import ConnectionPool, SshSession
from tests.runtime.conftest import OPERATOR, SETTINGS
from tests.support.hosts import TestHost, shared_transfer_ca
from tests.support.topology import Topology, host_root, in_host

# Each namespace host has its own port space; a new port per test keeps teardowns apart.
PORTS = itertools.count(8700)
LOOPBACK_PROBE = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2).close()\n"
    "except OSError:\n"
    "    sys.exit(3)\n"
)


@pytest.fixture
def remote(topology: Topology, tmp_path) -> Iterator[tuple[TestHost, SshSession, str]]:
    """host-a of the topology, a session as the broker, and a fresh root on it."""
    host = topology.hosts["host-a"]
    root = str(host_root(host, f"runtime-{tmp_path.name}"))
    policy = AccessPolicy.from_mapping({OPERATOR: [("*", ACTIONS)]})
    with ConnectionPool(SETTINGS) as pool:
        yield host, host.session(policy, OPERATOR, pool), root


def test_a_shard_bound_to_the_host_address_is_healthy_and_served_there(remote) -> None:
    host, session, root = remote
    address, port = host.sshd.address, next(PORTS)
    assert not address.startswith("127.")
    shards = ShardRuntime(session, root)
    try:
        status = shards.start("kv-1", port, generation=1, bind=address)
        assert status.running
        assert shards.health("kv-1", port)["status"] == "ok"
        client.put(address, port, "k", b"at the host's own address")
        assert client.get(address, port, "k") == b"at the host's own address"
        # Bound to the configured address only: the host's loopback has nothing on the port.
        probe = in_host(host, "/usr/bin/python3", "-c", LOOPBACK_PROBE, str(port), check=False)
        assert probe.returncode == 3, probe
    finally:
        shards.clean("kv-1")


def test_the_handover_starts_and_checks_the_copy_at_the_host_address(remote) -> None:
    host, session, root = remote
    address, port, new_port = host.sshd.address, next(PORTS), next(PORTS)
    source, target = ShardRuntime(session, f"{root}/src"), ShardRuntime(session, f"{root}/dst")
    try:
        source.start("kv-1", port, generation=1, bind=address)
        source.health("kv-1", port)
        client.put(address, port, "moved", b"x" * 100_000)
        manifest = source.freeze_and_snapshot("kv-1")
        send_between_hosts(source, target, "kv-1", SendMode.DELTA, manifest=manifest,
                           move_id="mv-1", ca=shared_transfer_ca()[0])  # fmt: skip
        source.stop("kv-1", kill=True)
        with target.handover(
            manifest, new_port, generation=2, bind=address, health_timeout=10
        ) as handover:
            handover.restored()
            started = handover.start()
            answer = handover.healthy()
        assert started.running and answer["pid"] == started.pid
        assert client.get(address, new_port, "moved") == b"x" * 100_000
    finally:
        source.clean("kv-1")
        target.clean("kv-1")
