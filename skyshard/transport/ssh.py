"""SSH sessions over paramiko with pinned host keys, access checks, pooling, retries and jumps."""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from skyshard.transport import validate
from skyshard.transport.access import AccessPolicy
from skyshard.transport.commands import RemoteCommand, python_interpreter
from skyshard.transport.validate import ValidationError

log = logging.getLogger(__name__)

# AEAD first: paramiko's default prefers aes-ctr + HMAC, measurably slower here. No CBC/3DES.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr")
KEY_LINE_PREFIXES = ("ssh-", "ecdsa-")


class SshError(Exception):
    """Any failure to reach a host or run an operation on it."""


class HostKeyRejected(SshError):
    """The host offered a key other than the pinned one (or none is pinned): never connect."""


class AuthenticationFailed(SshError):
    """The host refused our client key or certificate."""


class ConnectFailed(SshError):
    """The host stayed unreachable through every retry."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class RemoteCommandFailed(SshError):
    """A remote operation exited non-zero or timed out."""

    def __init__(self, message: str, exit_status: int, stderr: str) -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.stderr = stderr


@dataclass(frozen=True)
class SshEndpoint:
    """How to reach one host; every field is validated when the endpoint is built.

    `host_key` is the pinned public key line (`ssh-ed25519 AAAA...`) or a known_hosts file
    path; `client_key` an Ed25519 private key, optionally with an OpenSSH user `certificate`.
    """

    host_id: str
    provider_id: str
    address: str
    host_key: str
    client_key: Path
    port: int = 22
    user: str = "root"
    certificate: Path | None = None
    jump: SshEndpoint | None = None
    python: str = "python3"

    def __post_init__(self) -> None:
        validate.node_id(self.host_id, "host_id")
        validate.node_id(self.provider_id, "provider_id")
        validate.address(self.address, "address")
        validate.user(self.user, "user")
        python_interpreter(self.python)
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValidationError("port", self.port, "must be an integer in 1..65535")
        if not self.host_key:
            raise ValidationError("host_key", self.host_key, "a pinned host key is required")

    @property
    def known_hosts_name(self) -> str:
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.host_id} ({self.user}@{self.address}:{self.port})"


@dataclass(frozen=True)
class SshSettings:
    """Timeouts (seconds), keepalive and the bounded retry schedule for transient failures."""

    connect_timeout: float = 10.0
    command_timeout: float = 600.0
    keepalive: int = 15
    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff * 2 ** (attempt - 1), self.max_backoff)


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: bytes
    stderr: bytes


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style `SHA256:...` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def pinned_host_keys(endpoint: SshEndpoint) -> list[paramiko.PKey]:
    """The keys this endpoint may present: the pinned line, or its known_hosts entries."""
    if endpoint.host_key.startswith(KEY_LINE_PREFIXES):
        try:
            key_type, blob = endpoint.host_key.split()[:2]
            return [paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))]
        except (ValueError, paramiko.SSHException) as error:
            raise ValidationError("host_key", endpoint.host_key, f"unreadable: {error}") from None
    path = Path(endpoint.host_key)
    try:
        entries = paramiko.HostKeys(str(path)).lookup(endpoint.known_hosts_name)
    except OSError as error:
        raise ValidationError("host_key", endpoint.host_key, f"unreadable: {error}") from None
    if not entries:
        raise HostKeyRejected(
            f"{endpoint.label}: no pinned host key for {endpoint.known_hosts_name} in {path}"
        )
    return list(entries.values())


def private_key_problem(path: Path) -> str | None:
    """Why OpenSSH would refuse this private key file (readable by group or others), with the
    fix; None when its mode is fine (or it does not exist: reading it will say so)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None
    if mode & 0o077:
        return (
            f"private key {path} is readable by group or others (mode {mode:04o}); "
            f"fix: chmod 600 {path}"
        )
    return None


def load_client_key(endpoint: SshEndpoint) -> paramiko.Ed25519Key:
    problem = private_key_problem(endpoint.client_key)
    if problem:
        raise ValidationError("client_key", str(endpoint.client_key), problem)
    try:
        key = paramiko.Ed25519Key.from_private_key_file(str(endpoint.client_key))
    except (OSError, paramiko.SSHException) as error:
        raise ValidationError(
            "client_key", str(endpoint.client_key), f"not a readable Ed25519 key: {error}"
        ) from None
    if endpoint.certificate is not None:
        key.load_certificate(str(endpoint.certificate))
    return key


class _PinnedOnly(paramiko.RejectPolicy):
    """Reject like RejectPolicy, with an error naming the host and both fingerprints."""

    def __init__(self, endpoint: SshEndpoint, expected: list[paramiko.PKey]) -> None:
        self.endpoint = endpoint
        self.expected = expected

    def missing_host_key(self, client: object, hostname: str, key: paramiko.PKey) -> None:
        raise _key_mismatch(self.endpoint, self.expected, key)


def _key_mismatch(
    endpoint: SshEndpoint, expected: list[paramiko.PKey], offered: paramiko.PKey
) -> HostKeyRejected:
    wanted = ", ".join(f"{key.get_name()} {fingerprint(key)}" for key in expected)
    return HostKeyRejected(
        f"{endpoint.label}: host key mismatch: expected {wanted}, "
        f"offered {offered.get_name()} {fingerprint(offered)}; refusing to connect"
    )


def _fast_transport(sock: object, **kwargs: object) -> paramiko.Transport:
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    options.ciphers = tuple(name for name in CIPHERS if name in options.ciphers)
    return transport


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, OSError | EOFError | paramiko.ChannelException):
        return True
    return isinstance(error, paramiko.SSHException) and "protocol banner" in str(error)


class ConnectionPool:
    """Open SSH connections keyed by endpoint, reused while their transport is alive."""

    def __init__(self, settings: SshSettings | None = None) -> None:
        self.settings = settings or SshSettings()
        self._clients: dict[SshEndpoint, paramiko.SSHClient] = {}
        self._lock = threading.RLock()

    def client(self, endpoint: SshEndpoint) -> paramiko.SSHClient:
        with self._lock:
            client = self._clients.get(endpoint)
            transport = client.get_transport() if client else None
            if client is None or transport is None or not transport.is_active():
                client = self._connect_with_retries(endpoint)
                self._clients[endpoint] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect_with_retries(self, endpoint: SshEndpoint) -> paramiko.SSHClient:
        expected = pinned_host_keys(endpoint)
        client_key = load_client_key(endpoint)
        for attempt in range(1, self.settings.attempts + 1):
            try:
                return self._connect(endpoint, expected, client_key)
            except (HostKeyRejected, AuthenticationFailed):
                raise
            except Exception as error:
                if not _is_transient(error):
                    raise SshError(f"{endpoint.label}: {error}") from error
                if attempt == self.settings.attempts:
                    raise ConnectFailed(
                        f"{endpoint.label}: unreachable after {attempt} attempts: {error!r}",
                        attempt,
                    ) from error
                delay = self.settings.delay(attempt)
                log.warning("%s: attempt %d failed (%r), retry in %.1fs", endpoint.label,
                            attempt, error, delay)  # fmt: skip
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _connect(
        self, endpoint: SshEndpoint, expected: list[paramiko.PKey], client_key: paramiko.PKey
    ) -> paramiko.SSHClient:
        sock = self._open_socket(endpoint)
        client = paramiko.SSHClient()
        for key in expected:
            client.get_host_keys().add(endpoint.known_hosts_name, key.get_name(), key)
        client.set_missing_host_key_policy(_PinnedOnly(endpoint, expected))
        timeout = self.settings.connect_timeout
        try:
            client.connect(
                endpoint.address,
                port=endpoint.port,
                username=endpoint.user,
                pkey=client_key,
                sock=sock,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                allow_agent=False,
                look_for_keys=False,
                transport_factory=_fast_transport,
            )
        except paramiko.BadHostKeyException as error:
            client.close()
            raise _key_mismatch(endpoint, expected, error.key) from None
        except paramiko.AuthenticationException as error:
            client.close()
            raise AuthenticationFailed(
                f"{endpoint.label}: authentication refused for user {endpoint.user!r} with "
                f"client key {fingerprint(client_key)}: {error}"
            ) from None
        except BaseException:
            client.close()
            raise
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(self.settings.keepalive)
        log.info("connected to %s", endpoint.label)
        return client

    def _open_socket(self, endpoint: SshEndpoint) -> socket.socket | paramiko.Channel:
        target = (endpoint.address, endpoint.port)
        if endpoint.jump is None:
            return socket.create_connection(target, timeout=self.settings.connect_timeout)
        jump = self.client(endpoint.jump).get_transport()
        assert jump is not None
        return jump.open_channel(
            "direct-tcpip", target, ("127.0.0.1", 0), timeout=self.settings.connect_timeout
        )


@dataclass
class SshSession:
    """Remote actions on one endpoint on behalf of one operator.

    Every call names its action; the access policy is checked before any connection.
    """

    endpoint: SshEndpoint
    policy: AccessPolicy
    operator: str
    pool: ConnectionPool = field(default_factory=ConnectionPool)

    def authorize(self, action: str) -> None:
        self.policy.check(self.operator, self.endpoint.provider_id, action)

    def run(
        self,
        command: RemoteCommand,
        *,
        action: str,
        stdin: bytes = b"",
        check: bool = True,
        on_line: Callable[[bytes], None] | None = None,
    ) -> CommandResult:
        """Run one allow-listed command; raise RemoteCommandFailed on non-zero if `check`.
        `on_line` sees each stdout line as it arrives (progress of long commands)."""
        self.authorize(action)
        channel = self._open_channel()
        try:
            channel.exec_command(command.line)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            stdout = _read_stdout(channel, on_line)
            stderr = channel.makefile_stderr("rb").read()
            status = channel.recv_exit_status()
        except TimeoutError as error:
            raise RemoteCommandFailed(
                f"{self.endpoint.label}: {command.operation} timed out after "
                f"{self.pool.settings.command_timeout}s",
                -1,
                "",
            ) from error
        finally:
            channel.close()
        result = CommandResult(status, stdout, stderr)
        if check and status != 0:
            message = stderr.decode(errors="replace").strip()[-2000:]
            if status == -1:  # paramiko's value when the channel closed without a status
                message = f"connection lost before the command finished {message}".strip()
            raise RemoteCommandFailed(
                f"{self.endpoint.label}: {command.operation} exited {status}: {message}",
                status,
                message,
            )
        return result

    def open_sftp(self, *, action: str) -> paramiko.SFTPClient:
        """A new SFTP channel on the pooled connection (one per parallel stream)."""
        self.authorize(action)
        channel = self._open_channel()  # not paramiko's open_sftp: it waits an hour for it
        channel.invoke_subsystem("sftp")
        return paramiko.SFTPClient(channel)

    def _open_channel(self) -> paramiko.Channel:
        """A new session channel on the pooled connection. A connection that cannot open one
        within the connect timeout is dead (a cut link leaves it looking active): it is
        closed and one new connection is tried."""
        for attempt in (1, 2):
            transport = self.pool.client(self.endpoint).get_transport()
            assert transport is not None
            try:
                channel = transport.open_session(timeout=self.pool.settings.connect_timeout)
            except paramiko.SSHException as error:
                if attempt == 2:
                    raise
                log.warning("%s: %s; reconnecting", self.endpoint.label, error)
                transport.close()
                continue
            channel.settimeout(self.pool.settings.command_timeout)
            return channel
        raise AssertionError("unreachable")


def _read_stdout(channel: paramiko.Channel, on_line: Callable[[bytes], None] | None) -> bytes:
    stdout = channel.makefile("rb")
    if on_line is None:
        return stdout.read()
    lines = []
    while line := stdout.readline():
        on_line(line)
        lines.append(line)
    return b"".join(lines)
