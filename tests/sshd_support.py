"""Shared by the suites that need a real OpenSSH sshd: skip where it is missing, fail in CI."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pytest

from skyshard.runtime import host_helper
from skyshard.testing.hosts import TestHost, shared_transfer_ca
from skyshard.testing.sshd import sshd_missing_reason
from skyshard.transport.certificates import MoveGrant


def require_sshd() -> None:
    reason = sshd_missing_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the sshd tests: {reason}")
        pytest.skip(reason)


def certificate_ssh(
    moves: Path, target: TestHost, grant: MoveGrant, *, now: float | None = None
) -> list[str]:
    """A source helper's own `ssh` command line to `target`, with the files it uses written
    to `moves` as the broker writes them: a fresh key, its certificate for `grant` (issued at
    `now`) and the target's pinned host key."""
    credentials = shared_transfer_ca()[0].issue(grant, now=time.time() if now is None else now)
    moves.mkdir(parents=True, exist_ok=True)
    (moves / "key").write_bytes(credentials.private_key)
    (moves / "key").chmod(0o600)
    (moves / "key-cert.pub").write_bytes(credentials.certificate)
    name = target.endpoint().known_hosts_name
    (moves / "known_hosts").write_text(f"{name} {target.sshd.host_key_line}\n")
    args = argparse.Namespace(to_address=target.sshd.address, to_port=target.sshd.port,
                              to_user=target.sshd.user)  # fmt: skip
    return host_helper.ssh_command(moves, args, keepalive=5)
