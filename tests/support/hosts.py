"""Simulated shard hosts for tests and benches: a real sshd plus a root folder per host.

Every host's sshd trusts one transfer CA per process (`shared_transfer_ca`), so a Migrator
built with it can move chunks host to host under move-scoped certificates.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from skyshard.broker.migration import HostAccess
from skyshard.runtime import host_helper
from skyshard.transport.access import AccessPolicy
from skyshard.transport.certificates import MoveGrant, TransferCA
from skyshard.transport.ssh import ConnectionPool, SshEndpoint, SshSession
from tests.support.netns import Namespaces
from tests.support.sshd import SSHD_BINARY, RunningSshd, start_sshd, wait_listening


@dataclass
class TestHost:
    """One host: its sshd, its root folder (chunk store, helpers, shards) and address."""

    __test__ = False  # not a pytest test class

    host_id: str
    provider_id: str
    sshd: RunningSshd
    root: Path
    command_prefix: tuple[str, ...] = ()
    # The host's interpreter for skyshard's helpers (namespace hosts: the system python3).
    python: str = sys.executable

    def endpoint(self) -> SshEndpoint:
        return SshEndpoint(
            host_id=self.host_id,
            provider_id=self.provider_id,
            address=self.sshd.address,
            host_key=self.sshd.host_key_line,
            client_key=self.sshd.client_key_path,
            port=self.sshd.port,
            user=self.sshd.user,
            python=self.python,
        )

    def session(self, policy: AccessPolicy, operator: str, pool: ConnectionPool) -> SshSession:
        return SshSession(self.endpoint(), policy, operator, pool)

    def access(
        self, policy: AccessPolicy, operator: str, pool: ConnectionPool, bind: str = "0.0.0.0"
    ) -> HostAccess:
        """The broker's access to this host, shards served at its sshd's address."""
        session = self.session(policy, operator, pool)
        return HostAccess(self.host_id, session, str(self.root), self.sshd.address, bind=bind)

    def kill_sshd(self) -> None:
        """SIGKILL sshd and every session process under it, like a host losing its sshd."""
        doomed = [*_descendants(self.sshd.process.pid), self.sshd.process.pid]
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.sshd.process.wait()

    def restart_sshd(self) -> None:
        """Start sshd again with the same config, keys and port (after a test killed it), and
        wait until it listens."""
        self.sshd.stop()
        log_since = len(self.sshd.log())
        log = self.sshd.log_path.open("ab")
        self.sshd.process = subprocess.Popen(
            [*self.command_prefix, str(SSHD_BINARY), "-D", "-e", "-f",
             str(self.sshd.workdir / "sshd_config")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_listening(self.sshd, self.command_prefix, 10, log_since)


@functools.cache
def shared_transfer_ca() -> tuple[TransferCA, Path]:
    """This process's transfer CA and its private key file (`<file>.pub` is its public key,
    which every host started here lists in TrustedUserCAKeys)."""
    directory = Path(tempfile.mkdtemp(prefix="skyshard-transfer-ca-"))
    atexit.register(shutil.rmtree, directory, True)
    key = directory / "transfer_ca"
    return TransferCA.generate(key), key


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
    python: str = sys.executable,
    environment: Mapping[str, str] | None = None,
) -> TestHost:
    """Start a host whose sshd gives sessions an empty HOME and trusts the shared transfer CA.
    `python` is the host's interpreter for the helpers (e.g. the system `/usr/bin/python3`);
    `environment` adds variables to every session (e.g. a PATH without some tool).

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
        trusted_user_ca=shared_transfer_ca()[1].with_name("transfer_ca.pub"),
        # sshd uses only the first SetEnv line: all variables go on one.
        extra_config=[
            " ".join(
                ["SetEnv", f"HOME={home}", *(f"{k}={v}" for k, v in (environment or {}).items())]
            )
        ],
    )
    root = root or workdir / "root"
    root.mkdir(parents=True, exist_ok=True)
    return TestHost(host_id, provider_id, sshd, root, tuple(command_prefix), python)


@contextlib.contextmanager
def namespace_hosts(workdir: Path, count: int) -> Iterator[tuple[Namespaces, dict[str, TestHost]]]:
    """Hosts h1..h<count>, each an sshd (port 22) in its own network namespace at its own
    address; on exit every process left in the namespaces is killed and they are removed."""
    spaces = Namespaces(count)
    hosts: dict[str, TestHost] = {}
    try:
        spaces.open()
        for index in range(1, count + 1):
            host_id = f"h{index}"
            hosts[host_id] = start_host(workdir / host_id, host_id, f"prov-{index}",
                                        address=spaces.address(index), port=22,
                                        command_prefix=spaces.exec_prefix(index))  # fmt: skip
        yield spaces, hosts
    finally:
        for host in hosts.values():
            host.sshd.stop()
        for index in range(1, count + 1):
            pids = subprocess.run(["ip", "netns", "pids", spaces.name(index)],
                                  capture_output=True, text=True).stdout.split()  # fmt: skip
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        spaces.close()


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
