"""Fixtures: a real OpenSSH sshd on loopback, endpoints and sessions pointing at it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skyshard.transport.access import ACTIONS, AccessPolicy
from skyshard.transport.ssh import ConnectionPool, SshEndpoint, SshSession, SshSettings
from tests.support.sshd import RunningSshd, require_sshd, start_sshd

OPERATOR = "ops"
FAST_RETRIES = SshSettings(connect_timeout=5, command_timeout=120, attempts=3, backoff=0.05)


@pytest.fixture(scope="session")
def sshd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], RunningSshd]]:
    """Start extra sshd instances (each with its own host key); all stopped at the end."""
    started: list[RunningSshd] = []

    def start() -> RunningSshd:
        require_sshd()
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def sshd(sshd_factory: Callable[[], RunningSshd]) -> RunningSshd:
    return sshd_factory()


def endpoint_for(server: RunningSshd, **overrides: object) -> SshEndpoint:
    fields: dict[str, object] = {
        "host_id": "host-a",
        "provider_id": "prov-a",
        "address": server.address,
        "port": server.port,
        "user": server.user,
        "host_key": server.host_key_line,
        "client_key": server.client_key_path,
        "python": sys.executable,
    }
    fields.update(overrides)
    return SshEndpoint(**fields)  # type: ignore[arg-type]


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    with ConnectionPool(FAST_RETRIES) as connections:
        yield connections


@pytest.fixture
def allow_all() -> AccessPolicy:
    return AccessPolicy.from_mapping({OPERATOR: [("*", ACTIONS)]})


@pytest.fixture
def session(sshd: RunningSshd, pool: ConnectionPool, allow_all: AccessPolicy) -> SshSession:
    return SshSession(endpoint_for(sshd), allow_all, OPERATOR, pool)


@pytest.fixture
def remote_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("remote")
