"""A small generated sky (2 providers x 2 hosts) served by embedded hosts on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from skyshard.broker.from_config import broker_policy, host_accesses
from skyshard.broker.migration import HostAccess
from skyshard.config.sky import Sky, load_sky
from skyshard.embedded_hosts import RunningSky, running_sky
from skyshard.sim import SkyParams, write_sky
from skyshard.transport.ssh import ConnectionPool, SshSettings
from tests.ports import free_test_ports

SMALL = SkyParams(providers=2, hosts_per_provider=2, shards=4, days=7, seed=5)
SETTINGS = SshSettings(connect_timeout=5, command_timeout=60, attempts=2, backoff=0.05)


def make_sky(home: Path) -> Sky:
    """Write the small sky on a block of free ports (hosts, then shards), from a random start
    so that parallel runs and a running demo do not race for the same block."""
    write_sky(replace(SMALL, port_base=free_test_ports(SMALL.ports)), home)
    return load_sky(home)


def shard_processes(roots: list[Path]) -> list[tuple[int, str]]:
    """(pid, cmdline) of every live process whose command line names a state dir under `roots`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(f"{root}/shards/" in cmdline for root in roots):
            found.append((int(proc.name), cmdline))
    return found


@pytest.fixture(scope="module")
def sky_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sky, Path]:
    home = tmp_path_factory.mktemp("sky")
    return make_sky(home), home


@pytest.fixture(scope="module")
def served(sky_home: tuple[Sky, Path]) -> Iterator[RunningSky]:
    _, home = sky_home
    with running_sky(home) as running:
        yield running


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    with ConnectionPool(SETTINGS) as opened:
        yield opened


@pytest.fixture
def access(
    sky_home: tuple[Sky, Path], served: RunningSky, pool: ConnectionPool
) -> dict[str, HostAccess]:
    sky, _ = sky_home
    return host_accesses(sky, sky.hosts, pool, broker_policy(sky))
