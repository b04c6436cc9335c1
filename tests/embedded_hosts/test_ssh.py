"""The paramiko client side against embedded hosts: pinned keys, commands, SFTP, refusals."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

import paramiko
import pytest

from skyshard.broker.from_config import broker_policy, host_accesses
from skyshard.broker.migration import HostAccess
from skyshard.sim.hosts import ensure_ed25519_key
from skyshard.transport.chunkstore import make_remote_dirs
from skyshard.transport.commands import RemoteCommand, RemotePath
from skyshard.transport.ssh import (
    AuthenticationFailed,
    ConnectionPool,
    HostKeyRejected,
    SshSession,
)

HOST = "cloud-a-h00"


def command(*argv: str) -> RemoteCommand:
    return RemoteCommand("test", argv)


def session_for(access: dict[str, HostAccess], pool: ConnectionPool, **changes) -> SshSession:
    session = access[HOST].session
    endpoint = dataclasses.replace(session.endpoint, **changes)
    return SshSession(endpoint, session.policy, session.operator, pool)


def test_command_runs_in_the_host_root_with_a_minimal_environment(access):
    root = access[HOST].root
    result = access[HOST].session.run(command("sh", "-c", "pwd; env"), action="read_telemetry")
    lines = result.stdout.decode().splitlines()
    assert lines[0] == root
    assert f"HOME={root}" in lines
    assert {line.split("=")[0] for line in lines[1:]} <= {"HOME", "PATH", "PWD", "SHLVL", "_"}


def test_stdin_stdout_stderr_and_exit_status_are_forwarded(access):
    script = "cat; echo to-stderr >&2; exit 7"
    data = bytes(range(256)) * 4096  # 1 MiB of binary data through stdin and back
    result = access[HOST].session.run(
        command("sh", "-c", script), action="read_telemetry", stdin=data, check=False
    )
    assert (result.exit_status, result.stdout, result.stderr) == (7, data, b"to-stderr\n")


def test_quoted_arguments_reach_the_command_literally(access):
    tricky = "a b; echo injected $(id) `id` 'q' \"d\" | & > *"
    result = access[HOST].session.run(command("printf", "%s", tricky), action="read_telemetry")
    assert result.stdout.decode() == tricky


def test_sftp_put_get_below_the_root(access):
    root = RemotePath(access[HOST].root)
    with access[HOST].session.open_sftp(action="push_routing") as sftp:
        make_remote_dirs(sftp, root.child("files/deep"))
        path = root.child("files/deep/blob").text
        sftp.putfo(io.BytesIO(b"payload" * 10_000), path)
        assert Path(path).read_bytes() == b"payload" * 10_000
        buffer = io.BytesIO()
        sftp.getfo(path, buffer)
        assert buffer.getvalue() == b"payload" * 10_000
        sftp.posix_rename(path, root.child("files/renamed").text)
        assert sorted(sftp.listdir(root.child("files").text)) == ["deep", "renamed"]


def test_sftp_refuses_paths_outside_the_root(access, tmp_path):
    root = Path(access[HOST].root)
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (root / "escape").unlink(missing_ok=True)
    (root / "escape").symlink_to(tmp_path)
    with access[HOST].session.open_sftp(action="push_routing") as sftp:
        for attempt in (
            lambda: sftp.open(str(outside)),
            lambda: sftp.open(f"{root}/../{root.parent.name}/../../etc/passwd"),
            lambda: sftp.open(f"{root}/escape/outside.txt"),  # a symlink out of the root
            lambda: sftp.putfo(io.BytesIO(b"x"), str(tmp_path / "planted")),
            lambda: sftp.mkdir(str(tmp_path / "made")),
            lambda: sftp.rename(str(outside), f"{root}/stolen"),
            lambda: sftp.listdir(str(root.parent)),
            lambda: sftp.chmod(str(root.parent), 0o777),
        ):
            with pytest.raises(PermissionError, match="outside the host root"):
                attempt()
        # Ancestors of the root can be stat'ed (what `mkdir -p` over SFTP needs), nothing more.
        assert sftp.stat(str(root.parent)).st_mode
    assert not (tmp_path / "planted").exists() and not (tmp_path / "made").exists()


def test_changed_host_key_is_refused(access, pool, tmp_path):
    other = ensure_ed25519_key(tmp_path / "other", "impostor")
    session = session_for(access, pool, host_key=other)
    with pytest.raises(HostKeyRejected, match=f"{HOST}.*host key mismatch"):
        session.run(command("true"), action="read_telemetry")


def test_unknown_client_key_and_wrong_user_are_refused(access, pool, tmp_path):
    ensure_ed25519_key(tmp_path / "stranger", "stranger")
    with pytest.raises(AuthenticationFailed, match="authentication refused"):
        session_for(access, pool, client_key=tmp_path / "stranger").run(
            command("true"), action="read_telemetry"
        )
    with pytest.raises(AuthenticationFailed, match="user 'root'"):
        session_for(access, pool, user="root").run(command("true"), action="read_telemetry")


def _transport(host) -> paramiko.Transport:
    transport = paramiko.Transport((host.address, host.port))
    transport.start_client(timeout=5)
    return transport


def test_password_login_and_shells_are_refused(sky_home, served):
    sky, home = sky_home
    _, host = sky.hosts[HOST]
    with (
        contextlib.closing(_transport(host)) as transport,
        pytest.raises(paramiko.BadAuthenticationType, match="publickey"),
    ):
        transport.auth_password(host.user, "guess")
    with contextlib.closing(_transport(host)) as transport:
        key = paramiko.Ed25519Key.from_private_key_file(str(home / "keys/client_ed25519"))
        transport.auth_publickey(host.user, key)
        channel = transport.open_session()
        channel.invoke_shell()
        assert channel.recv_exit_status() == 1
        assert b"no interactive shell" in channel.makefile_stderr("rb").read()


def test_every_host_serves_its_own_pinned_key(sky_home, served, pool):
    sky, home = sky_home
    accesses = host_accesses(sky, sky.hosts, pool, broker_policy(sky))
    roots = set()
    for host_id, host_access in accesses.items():
        result = host_access.session.run(command("pwd"), action="read_telemetry")
        roots.add(result.stdout.decode().strip())
        assert result.stdout.decode().strip() == str(home / "hosts" / host_id)
    assert len(roots) == len(sky.hosts) == 4
