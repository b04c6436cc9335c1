"""Simulated shard hosts for tests and benches: a real sshd plus a root folder per host."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from skyshard.transport.access import AccessPolicy
from skyshard.transport.ssh import ConnectionPool, SshEndpoint, SshSession
from tests.support.sshd import SSHD_BINARY, RunningSshd, start_sshd


@dataclass
class TestHost:
    """One host: its sshd, its root folder (chunk store, helpers, shards) and address."""

    __test__ = False  # not a pytest test class

    host_id: str
    provider_id: str
    sshd: RunningSshd
    root: Path
    command_prefix: tuple[str, ...] = ()

    def endpoint(self) -> SshEndpoint:
        return SshEndpoint(
            host_id=self.host_id,
            provider_id=self.provider_id,
            address=self.sshd.address,
            host_key=self.sshd.host_key_line,
            client_key=self.sshd.client_key_path,
            port=self.sshd.port,
            user=self.sshd.user,
            python=sys.executable,
        )

    def session(self, policy: AccessPolicy, operator: str, pool: ConnectionPool) -> SshSession:
        return SshSession(self.endpoint(), policy, operator, pool)

    def kill_sshd(self) -> None:
        """SIGKILL sshd and every session process under it, like a host losing its sshd."""
        doomed = [*_descendants(self.sshd.process.pid), self.sshd.process.pid]
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.sshd.process.wait()

    def restart_sshd(self) -> None:
        """Start sshd again with the same config, keys and port (after a test killed it)."""
        self.sshd.stop()
        log = self.sshd.log_path.open("ab")
        self.sshd.process = subprocess.Popen(
            [*self.command_prefix, str(SSHD_BINARY), "-D", "-e", "-f",
             str(self.sshd.workdir / "sshd_config")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.close()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(proc.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def start_host(
    workdir: Path,
    host_id: str,
    provider_id: str,
    *,
    root: Path | None = None,
    address: str = "127.0.0.1",
    port: int | None = None,
    command_prefix: Sequence[str] = (),
) -> TestHost:
    """Start a host whose sshd gives sessions an empty HOME.

    Why: sshd runs every command through the user's shell, and bash sources `~/.bashrc` for
    commands arriving over ssh; on machines where that file runs `pyenv init` each remote
    command costs ~0.3 s instead of ~0.05 s. An empty HOME skips it.
    """
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    sshd = start_sshd(
        workdir / "sshd",
        address=address,
        port=port,
        command_prefix=command_prefix,
        extra_config=[f"SetEnv HOME={home}"],
    )
    root = root or workdir / "root"
    root.mkdir(parents=True, exist_ok=True)
    return TestHost(host_id, provider_id, sshd, root, tuple(command_prefix))
