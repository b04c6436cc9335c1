"""Start a real OpenSSH `sshd` on a loopback port with its own config and keys (tests, benches)."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SSHD_BINARY = Path("/usr/sbin/sshd")
# sshd refuses to start as root without its privilege separation directory.
PRIVSEP_DIR = Path("/run/sshd")


class SshdUnavailable(RuntimeError):
    """OpenSSH's sshd is not installed or did not start."""


def sshd_missing_reason() -> str | None:
    """Why a real sshd cannot be used here, or None when it can."""
    if not SSHD_BINARY.exists():
        return f"{SSHD_BINARY} is missing (apt-get install -y openssh-server)"
    return None


def require_sshd() -> None:
    """For the suites that need a real sshd: skip where it is missing, fail in CI."""
    reason = sshd_missing_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the sshd tests: {reason}")
        pytest.skip(reason)


def write_ed25519_key(path: Path, comment: str = "skyshard") -> str:
    """Write a new OpenSSH Ed25519 private key (mode 0600) and return its public key line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    line = f"{public.decode()} {comment}"
    path.with_name(path.name + ".pub").write_text(line + "\n")
    return line


def free_tcp_port(address: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `address`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


@dataclass
class RunningSshd:
    """One sshd process and what a client needs to reach it."""

    address: str
    port: int
    user: str
    host_key_line: str
    host_key_path: Path
    client_key_path: Path
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    authorized_keys: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """Terminate sshd (and, through its process group, its session children)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def log(self) -> str:
        """Everything sshd wrote to its log so far (for failure messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _config_text(
    address: str,
    port: int,
    host_key: Path,
    authorized_keys: Path,
    trusted_user_ca: Path | None,
    extra_config: Sequence[str] = (),
) -> str:
    lines = [
        f"Port {port}",
        f"ListenAddress {address}",
        f"HostKey {host_key}",
        "HostKeyAlgorithms ssh-ed25519",
        f"AuthorizedKeysFile {authorized_keys}",
        "PidFile none",
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        "AllowTcpForwarding yes",
        "MaxStartups 64:30:128",
        "MaxSessions 64",
        "LogLevel VERBOSE",
        # In-process SFTP: no login shell (and its rc files) per SFTP channel.
        "Subsystem sftp internal-sftp",
    ]
    if trusted_user_ca is not None:
        lines.append(f"TrustedUserCAKeys {trusted_user_ca}")
    lines.extend(extra_config)
    return "\n".join(lines) + "\n"


def start_sshd(
    workdir: Path,
    *,
    address: str = "127.0.0.1",
    port: int | None = None,
    extra_authorized_keys: Sequence[str] = (),
    trusted_user_ca: Path | None = None,
    command_prefix: Sequence[str] = (),
    start_timeout: float = 10.0,
    extra_config: Sequence[str] = (),
) -> RunningSshd:
    """Start `sshd -D -e` with its own host key and a fresh authorized client Ed25519 key.

    `command_prefix` runs sshd through another command, e.g. `["ip", "netns", "exec", "h1"]`;
    then `address` must be the namespace's address. sshd runs as the current user.
    `extra_config` lines are appended to sshd_config (e.g. `SetEnv HOME=...`).
    """
    reason = sshd_missing_reason()
    if reason:
        raise SshdUnavailable(reason)
    workdir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    host_key = workdir / "ssh_host_ed25519_key"
    host_line = write_ed25519_key(host_key, "sshd-host")
    client_key = workdir / "client_ed25519"
    client_line = write_ed25519_key(client_key, "skyshard-client")
    keys = [client_line, *extra_authorized_keys]
    authorized = workdir / "authorized_keys"
    authorized.write_text("\n".join(keys) + "\n")
    chosen_port = port if port is not None else free_tcp_port(address)
    config = workdir / "sshd_config"
    config.write_text(
        _config_text(address, chosen_port, host_key, authorized, trusted_user_ca, extra_config)
    )
    log_path = workdir / "sshd.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [*command_prefix, str(SSHD_BINARY), "-D", "-e", "-f", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    sshd = RunningSshd(
        address=address,
        port=chosen_port,
        user=getpass.getuser(),
        host_key_line=" ".join(host_line.split()[:2]),
        host_key_path=host_key,
        client_key_path=client_key,
        workdir=workdir,
        process=process,
        log_path=log_path,
        authorized_keys=keys,
    )
    wait_listening(sshd, command_prefix, start_timeout)
    return sshd


def wait_listening(
    sshd: RunningSshd, command_prefix: Sequence[str], timeout: float, log_since: int = 0
) -> None:
    """Until sshd listens; in a namespace, from its log after `log_since` characters (the log
    of a restarted sshd still holds the last run's line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sshd.process.poll() is not None:
            raise SshdUnavailable(f"sshd exited with {sshd.process.returncode}: {sshd.log()}")
        # Inside a namespace the port is not reachable from here; trust sshd's own log line.
        if command_prefix:
            if "Server listening" in sshd.log()[log_since:]:
                return
        else:
            try:
                with socket.create_connection((sshd.address, sshd.port), timeout=0.5):
                    return
            except OSError:
                pass
        time.sleep(0.05)
    sshd.stop()
    raise SshdUnavailable(f"sshd did not listen on {sshd.address}:{sshd.port}: {sshd.log()}")
