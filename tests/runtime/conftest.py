"""Fixtures: a real sshd "host" with a runtime client, shared by the runtime tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from skyshard.transport.access import ACTIONS, AccessPolicy
from skyshard.transport.ssh import ConnectionPool, SshSettings
from tests.support.hosts import TestHost, start_host
from tests.support.sshd import free_tcp_port, require_sshd

OPERATOR = "ops"
SETTINGS = SshSettings(connect_timeout=5, command_timeout=60, attempts=2, backoff=0.05)


@pytest.fixture(scope="session")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestHost]:
    require_sshd()
    started = start_host(tmp_path_factory.mktemp("host"), "host-a", "prov-a")
    yield started
    started.sshd.stop()


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    with ConnectionPool(SETTINGS) as connections:
        yield connections


@pytest.fixture
def allow_all() -> AccessPolicy:
    return AccessPolicy.from_mapping({OPERATOR: [("*", ACTIONS)]})


@pytest.fixture
def port() -> int:
    return free_tcp_port()


@pytest.fixture
def host_root(host: TestHost, tmp_path: Path) -> Path:
    """A fresh root per test on the shared host (tests must not see each other's shards)."""
    root = host.root / tmp_path.name
    root.mkdir()
    return root
