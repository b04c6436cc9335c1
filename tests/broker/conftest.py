"""Two hosts of the namespace topology (own addresses, non-root logins, the system python3),
a Migrator over them, and checks of the one-copy rule."""

from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from skyshard.broker.migration import HostAccess, MigrationSettings, Migrator, MoveRequest
from skyshard.broker.ops_tables import OpsStore
from skyshard.broker.precopy import PrecopyRule
from skyshard.demo_kv import client
from skyshard.transport.access import ACTIONS, AccessPolicy
from skyshard.transport.ssh import ConnectionPool, SshSettings
from tests.support.hosts import TestHost, shared_transfer_ca
from tests.support.topology import Topology, host_root

OPERATOR = "ops"
SETTINGS = SshSettings(connect_timeout=3, command_timeout=60, attempts=2, backoff=0.05)
SHARD = "kv-1"
PORTS = itertools.count(8700)  # each namespace host has its own port space
FAST = MigrationSettings(PrecopyRule(max_rounds=3, small_bytes=256 << 10), health_timeout=5)
# Every round chunked, also the first copy to an empty store (faults in the chunk stores).
CHUNKED = MigrationSettings(FAST.precopy, health_timeout=5, whole_first_copy_below=0)


class SimulatedCrash(BaseException):
    """The broker process dies here (not an Exception: nothing in the migrator catches it)."""


@pytest.fixture(scope="session")
def hosts(topology: Topology) -> dict[str, TestHost]:
    return {host_id: topology.hosts[host_id] for host_id in ("host-a", "host-b")}


@dataclass
class Cluster:
    """Per-test roots on the shared hosts, the ops DuckDB file, and a placed shard."""

    hosts: dict[str, TestHost]
    roots: dict[str, Path]
    db: Path
    port: int
    policy: AccessPolicy
    pool: ConnectionPool
    written: dict[str, bytes] = field(default_factory=dict)

    def access(self, policy: AccessPolicy | None = None) -> dict[str, HostAccess]:
        return {
            host_id: HostAccess(
                host_id,
                host.session(policy or self.policy, OPERATOR, self.pool),
                str(self.roots[host_id]),
                host.sshd.address,
                bind=host.sshd.address,
            )
            for host_id, host in self.hosts.items()
        }

    def migrator(self, settings: MigrationSettings = FAST, **kwargs) -> Migrator:
        policy = kwargs.pop("policy", None)
        ca = shared_transfer_ca()[0]
        return Migrator(str(self.db), self.access(policy), settings, transfer_ca=ca, **kwargs)

    def place(self, blobs: int = 3, blob_size: int = 1 << 20) -> None:
        source = self.access()["host-a"]
        runtime = source.runtime()
        runtime.start(SHARD, self.port, generation=1, bind=source.bind)
        runtime.health(SHARD, self.port)
        OpsStore(self.db).register_route(SHARD, "host-a", source.service_address, self.port)
        rng = random.Random(7)
        for index in range(blobs):
            self.write(f"blob-{index}", rng.randbytes(blob_size))
        for index in range(20):
            self.write(f"key-{index}", f"value-{index}".encode())

    def write(self, key: str, value: bytes) -> None:
        route = OpsStore(self.db).route(SHARD)
        assert route is not None
        client.put(route.address, route.port, key, value)
        self.written[key] = value

    def running_copies(self) -> list[str]:
        """Which hosts run a process for the shard (scanning /proc, not trusting the helper)."""
        found = []
        for host_id, root in self.roots.items():
            marker = f"{root}/shards/{SHARD}/state".encode()
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    if (
                        marker in (proc / "cmdline").read_bytes()
                        and b"demo-kv" in (proc / "cmdline").read_bytes()
                    ):
                        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                        if state != "Z":
                            found.append(host_id)
                except OSError:
                    continue
        return found

    def assert_serving_once(self, host_id: str) -> None:
        """Exactly one copy, on `host_id`, routed there, with every written key intact."""
        assert self.running_copies() == [host_id]
        route = OpsStore(self.db).route(SHARD)
        assert route is not None and route.host_id == host_id
        status = self.access()[host_id].runtime().status(SHARD)
        assert status.running and not status.frozen
        for key, value in self.written.items():
            assert client.get(route.address, route.port, key) == value, key
        expected = len(self.written)
        assert client.checksum(route.address, route.port)["keys"] == expected

    def request(self, move_id: str = "mv-1", **kwargs) -> MoveRequest:
        return MoveRequest(move_id, SHARD, "host-a", "host-b", **kwargs)


@pytest.fixture
def cluster(hosts: dict[str, TestHost], tmp_path: Path) -> Iterator[Cluster]:
    roots = {host_id: host_root(host, tmp_path.name) for host_id, host in hosts.items()}
    policy = AccessPolicy.from_mapping({OPERATOR: [("*", ACTIONS)]})
    with ConnectionPool(SETTINGS) as pool:
        made = Cluster(hosts, roots, tmp_path / "skyshard.duckdb", next(PORTS), policy, pool)
        yield made
        for host_id in roots:
            with contextlib.suppress(Exception):
                made.access()[host_id].runtime().clean(SHARD)
