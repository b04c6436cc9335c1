"""Two real sshd hosts, a sky config pointing at them (SKYSHARD_HOME), and a placed demo_kv
shard whose keys are checked after each migration."""

from __future__ import annotations

import contextlib
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
from tests.migration_job.sky import SkyFiles, write_sky
from tests.support.hosts import TestHost, start_host
from tests.support.sshd import free_tcp_port, require_sshd, write_ed25519_key

FAST_SSH = SshSettings(connect_timeout=3, command_timeout=60, attempts=2, backoff=0.05)


@pytest.fixture(scope="session")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TestHost]]:
    require_sshd()
    started = {
        "host-a": start_host(tmp_path_factory.mktemp("a"), "host-a", "prov-a"),
        "host-b": start_host(tmp_path_factory.mktemp("b"), "host-b", "prov-b"),
    }
    yield started
    for host in started.values():
        host.sshd.stop()


@pytest.fixture(scope="session")
def broker_key(hosts: dict[str, TestHost], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The broker's own client key, authorized on both hosts (sshd rereads the file)."""
    key = tmp_path_factory.mktemp("broker") / "client_ed25519"
    line = write_ed25519_key(key, "skyshard-broker")
    for host in hosts.values():
        with (host.sshd.workdir / "authorized_keys").open("a") as handle:
            handle.write(line + "\n")
    return key


@dataclass
class Site:
    """One test's sky: config files, per-test roots on the shared hosts, the DuckDB file."""

    hosts: dict[str, TestHost]
    roots: dict[str, Path]
    home: Path
    broker_key: Path
    db: Path
    port: int
    written: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sky = self.write()  # the correct config; a test may write a broken one later

    def files(self) -> SkyFiles:
        return SkyFiles({h: host.sshd.host_key_line for h, host in self.hosts.items()})

    def write(self, files: SkyFiles | None = None) -> Sky:
        """Write the sky's files (correct ones unless `files` says otherwise) and load them."""
        write_sky(self.home, self.hosts, self.roots, self.broker_key, files or self.files())
        return load_sky(self.home)

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
            runtime.start(self.shard, self.port, generation=1)
            runtime.health(self.shard, self.port)
        OpsStore(self.db).register_route(self.shard, "host-a", "127.0.0.1", self.port)
        for index in range(20):
            self.put(f"key-{index}", f"value-{index}".encode() * 1000)

    def put(self, key: str, value: bytes) -> None:
        client.put("127.0.0.1", self.port, key, value)
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
def site(
    hosts: dict[str, TestHost], broker_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Site]:
    roots = {}
    for host_id, host in hosts.items():
        roots[host_id] = host.root / tmp_path.name
        roots[host_id].mkdir()
    home = tmp_path / "sky"
    monkeypatch.setenv("SKYSHARD_HOME", str(home))
    made = Site(hosts, roots, home, broker_key, paths.duckdb_path(), free_tcp_port())
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
