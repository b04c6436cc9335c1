"""Security and connection behaviour against a real OpenSSH sshd."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest
from conftest import FAST_RETRIES, OPERATOR, endpoint_for

from skyshard.runtime.client import ShardRuntime
from skyshard.transport.access import AccessDenied, AccessPolicy, Denial
from skyshard.transport.ssh import (
    AuthenticationFailed,
    ConnectFailed,
    ConnectionPool,
    HostKeyRejected,
    SshSession,
    fingerprint,
)
from skyshard.transport.validate import ValidationError
from tests.support.sshd import RunningSshd, free_tcp_port, start_sshd, write_ed25519_key

PROBE = "a" * 64


def probe(session: SshSession, root: Path) -> list[str]:
    """One harmless remote round trip: ask an empty store what it lacks."""
    return ShardRuntime(session, str(root)).missing("probe", [PROBE])


def test_pinned_key_connects_and_runs(session: SshSession, remote_root: Path) -> None:
    assert probe(session, remote_root) == [PROBE]


def test_known_hosts_file_with_port_name(
    sshd: RunningSshd, pool: ConnectionPool, allow_all: AccessPolicy, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{sshd.address}]:{sshd.port} {sshd.host_key_line}\n")
    endpoint = endpoint_for(sshd, host_key=str(known_hosts))
    assert probe(SshSession(endpoint, allow_all, OPERATOR, pool), tmp_path) == [PROBE]


def test_unknown_host_is_refused(
    sshd: RunningSshd, pool: ConnectionPool, allow_all: AccessPolicy, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{sshd.address}]:1 {sshd.host_key_line}\n")
    endpoint = endpoint_for(sshd, host_key=str(known_hosts))
    with pytest.raises(HostKeyRejected, match=r"no pinned host key for \[127.0.0.1\]:\d+"):
        probe(SshSession(endpoint, allow_all, OPERATOR, pool), tmp_path)


def test_changed_host_key_is_refused_naming_both_fingerprints(
    sshd: RunningSshd, pool: ConnectionPool, allow_all: AccessPolicy, tmp_path: Path
) -> None:
    other_line = write_ed25519_key(tmp_path / "other_host_key")
    endpoint = endpoint_for(sshd, host_key=" ".join(other_line.split()[:2]))
    expected = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "other_host_key"))
    offered = paramiko.Ed25519Key.from_private_key_file(str(sshd.host_key_path))
    with pytest.raises(HostKeyRejected) as caught:
        probe(SshSession(endpoint, allow_all, OPERATOR, pool), tmp_path)
    message = str(caught.value)
    assert "host-a" in message
    assert f"expected ssh-ed25519 {fingerprint(expected)}" in message
    assert f"offered ssh-ed25519 {fingerprint(offered)}" in message


def test_wrong_client_key_is_refused(
    sshd: RunningSshd, pool: ConnectionPool, allow_all: AccessPolicy, tmp_path: Path
) -> None:
    write_ed25519_key(tmp_path / "stranger")
    endpoint = endpoint_for(sshd, client_key=tmp_path / "stranger")
    with pytest.raises(AuthenticationFailed, match="authentication refused for user 'root'"):
        probe(SshSession(endpoint, allow_all, OPERATOR, pool), tmp_path)


def closed_port_session(sshd: RunningSshd, policy: AccessPolicy) -> SshSession:
    endpoint = endpoint_for(sshd, port=free_tcp_port())
    return SshSession(endpoint, policy, OPERATOR, ConnectionPool(FAST_RETRIES))


def test_retries_on_connection_refused_are_bounded(
    sshd: RunningSshd, allow_all: AccessPolicy, tmp_path: Path
) -> None:
    session = closed_port_session(sshd, allow_all)
    with pytest.raises(ConnectFailed, match="unreachable after 3 attempts") as caught:
        probe(session, tmp_path)
    assert caught.value.attempts == FAST_RETRIES.attempts


def test_denied_action_is_refused_before_connecting(sshd: RunningSshd, tmp_path: Path) -> None:
    denials: list[Denial] = []
    policy = AccessPolicy.from_mapping({OPERATOR: [("prov-*", ["read_telemetry"])]}, denials.append)
    # A closed port: reaching the network would raise ConnectFailed instead.
    with pytest.raises(AccessDenied, match="'ops' may not receive_migration on provider 'prov-a'"):
        probe(closed_port_session(sshd, policy), tmp_path)
    assert denials == [Denial(OPERATOR, "prov-a", "receive_migration")]


@pytest.mark.parametrize(
    ("field", "value"),
    [("host_id", "a;reboot"), ("provider_id", "../p"), ("address", "h ost"), ("user", "r`id`")],
)
def test_bad_endpoint_fields_are_refused(sshd: RunningSshd, field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        endpoint_for(sshd, **{field: value})


@pytest.mark.parametrize("root", ["relative/root", "/tmp/../etc", "/tmp/a;b", "/tmp/$(id)"])
def test_bad_remote_root_is_refused_before_connecting(
    sshd: RunningSshd, allow_all: AccessPolicy, root: str
) -> None:
    with pytest.raises(ValidationError, match="remote_root"):
        ShardRuntime(closed_port_session(sshd, allow_all), root).missing("probe", [PROBE])


def test_jump_host(
    sshd: RunningSshd,
    sshd_factory: Callable[[], RunningSshd],
    pool: ConnectionPool,
    allow_all: AccessPolicy,
    tmp_path: Path,
) -> None:
    target = sshd_factory()
    jump = endpoint_for(sshd, host_id="bastion")
    endpoint = endpoint_for(target, host_id="behind", jump=jump)
    assert probe(SshSession(endpoint, allow_all, OPERATOR, pool), tmp_path) == [PROBE]
    jump_transport = pool.client(jump).get_transport()
    assert jump_transport is not None and jump_transport.is_active()


def test_user_certificate(
    sshd: RunningSshd, tmp_path: Path, allow_all: AccessPolicy, pool: ConnectionPool
) -> None:
    """`sshd` is requested only so a missing sshd skips (or fails in CI) like the others."""
    write_ed25519_key(tmp_path / "ca")
    write_ed25519_key(tmp_path / "user_key")
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(tmp_path / "ca"), "-I", "ops", "-n", "root",
         str(tmp_path / "user_key.pub")],
        check=True,
    )  # fmt: skip
    server = start_sshd(tmp_path / "sshd", trusted_user_ca=tmp_path / "ca.pub")
    try:
        endpoint = endpoint_for(
            server,
            client_key=tmp_path / "user_key",
            certificate=tmp_path / "user_key-cert.pub",
        )
        assert probe(SshSession(endpoint, allow_all, OPERATOR, pool), tmp_path) == [PROBE]
    finally:
        server.stop()
