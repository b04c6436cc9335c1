"""Two hosts of the namespace topology (own addresses, real sshd, non-root logins, the system
python3), a sky config pointing at them (SKYSHARD_HOME), and a placed demo_kv shard whose keys
are checked after each migration, read where routing points."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from skyshard.broker.from_config import broker_policy, host_accesses
from skyshard.broker.migration import HostAccess
from skyshard.broker.ops_tables import OpsStore
from skyshard.config import paths
from skyshard.config.sky import Sky, load_sky
from skyshard.demo_kv import client
from skyshard.transport.ssh import ConnectionPool, SshSettings
from tests.migration_job.sky import PROVIDERS, WORKLOADS
from tests.support.hosts import TestHost
from tests.support.topology import SkyLayout, Topology, host_root, write_topology_sky

FAST_SSH = SshSettings(connect_timeout=3, command_timeout=60, attempts=2, backoff=0.05)
# Each namespace host has its own port space; a new port per test keeps a slow teardown apart.
PORTS = itertools.count(8500)


@pytest.fixture(scope="session")
def hosts(topology: Topology) -> dict[str, TestHost]:
    return {host_id: topology.hosts[host_id] for host_id in PROVIDERS}


@dataclass
class Site:
    """One test's sky: config files, per-test roots on the shared hosts, the DuckDB file."""

    topology: Topology
    roots: dict[str, Path]
    home: Path
    db: Path
    port: int
    written: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sky = self.write()  # the correct config; a test may write a broken one later

    @property
    def hosts(self) -> dict[str, TestHost]:
        return {host_id: self.topology.hosts[host_id] for host_id in self.roots}

    def files(self) -> SkyLayout:
        return SkyLayout.full(self.topology, self.roots, WORKLOADS)

    def write(self, files: SkyLayout | None = None) -> Sky:
        """Write the sky's files (correct ones unless `files` says otherwise) and load them."""
        write_topology_sky(self.home, self.topology, files or self.files())
        return load_sky(self.home)

    def address(self, host_id: str) -> str:
        return self.topology.hosts[host_id].sshd.address

    @contextlib.contextmanager
    def access(self) -> Iterator[dict[str, HostAccess]]:
        """Both hosts as the broker sees them, with every action granted."""
        with ConnectionPool(FAST_SSH) as pool:
            yield host_accesses(self.sky, list(self.hosts), pool, broker_policy(self.sky))

    @property
    def shard(self) -> str:
        return self.sky.shards[0].id

    def place(self) -> None:
        """Start the shard on host-a (generation 1), route it there, and write keys."""
        with self.access() as hosts:
            runtime = hosts["host-a"].runtime()
            runtime.start(self.shard, self.port, generation=1, bind=self.address("host-a"))
            runtime.health(self.shard, self.port)
        OpsStore(self.db).register_route(self.shard, "host-a", self.address("host-a"), self.port)
        for index in range(20):
            self.put(f"key-{index}", f"value-{index}".encode() * 1000)

    def put(self, key: str, value: bytes) -> None:
        route = OpsStore(self.db).route(self.shard)
        assert route is not None
        client.put(route.address, route.port, key, value)
        self.written[key] = value

    def assert_serving(self, host_id: str) -> None:
        """The shard runs on `host_id` only, is routed there, and has every key written."""
        with self.access() as hosts:
            for other, access in hosts.items():
                status = access.runtime().status(self.shard)
                assert status.running == (other == host_id), (other, status)
        route = OpsStore(self.db).route(self.shard)
        assert route is not None and route.host_id == host_id
        for key, value in self.written.items():
            assert client.get(route.address, route.port, key) == value, key


@pytest.fixture
def site(topology: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    roots = {host_id: host_root(topology.hosts[host_id], tmp_path.name) for host_id in PROVIDERS}
    home = tmp_path / "sky"
    monkeypatch.setenv("SKYSHARD_HOME", str(home))
    made = Site(topology, roots, home, paths.duckdb_path(), next(PORTS))
    yield made
    made.write()  # the test may have broken the config or removed the key
    with made.access() as accesses:
        for access in accesses.values():
            with contextlib.suppress(Exception):
                access.runtime().clean(made.shard)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance
