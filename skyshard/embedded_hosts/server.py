"""One embedded SSH server (asyncssh) per simulated host: public-key login, exec via /bin/sh, SFTP.

A host behaves like a minimal sshd for its configured user: exec requests run the client's
command line with `/bin/sh -c` (the line is passed as one argv element, never re-assembled;
the client quotes every argument), in the host's root with `HOME=<root>` and a fixed PATH;
stdin, stdout, stderr and the exit status are forwarded. The SFTP subsystem serves absolute
paths but refuses anything that resolves outside the root (symlinks included), except `stat`
of the root's ancestors, which `mkdir -p` over SFTP needs. Shells, ptys, forwarding, agent
and X11 requests are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import asyncssh

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
COPY_CHUNK = 1 << 16


@dataclass(frozen=True)
class HostSpec:
    """What one embedded host serves: where, as whom, with which keys, from which root."""

    host_id: str
    address: str
    port: int
    user: str
    root: Path
    host_key: Path
    authorized_keys: Path


@dataclass
class Activity:
    """Open connections and running command process groups, so a stop can end them all."""

    connections: set = field(default_factory=set)
    command_groups: set[int] = field(default_factory=set)
    commands: set[asyncio.Task] = field(default_factory=set)
    closing: bool = False

    def track(self, group: int) -> None:
        """Record a command's process group. The command may have started before a stop
        that its coroutine only learns of now (spawning awaits): such a group ends at once."""
        self.command_groups.add(group)
        if self.closing:
            _kill_group(group)

    def close(self) -> None:
        self.closing = True
        for connection in list(self.connections):
            connection.close()
        for group in list(self.command_groups):
            _kill_group(group)

    async def wait_commands(self, timeout: float) -> None:
        """Wait for every command handler to finish; one still spawning when the stop began
        kills its group on `track`, so none leaves a process behind."""
        if self.commands:
            await asyncio.wait(list(self.commands), timeout=timeout)


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


class HostServerError(RuntimeError):
    """An embedded host could not start (bad key file, port in use); names host and value."""


class _HostServer(asyncssh.SSHServer):
    """Public-key authentication of the host's one user against its authorized keys."""

    def __init__(
        self, spec: HostSpec, keys: asyncssh.SSHAuthorizedKeys, activity: Activity
    ) -> None:
        self._spec = spec
        self._keys = keys
        self._activity = activity
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._activity.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self._activity.connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        # Any other user name gets no authorized keys at all, so every key is refused.
        if username == self._spec.user and self._conn is not None:
            self._conn.set_authorized_keys(self._keys)
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False


class RootedSFTPServer(asyncssh.SFTPServer):
    """SFTP on absolute paths that must resolve inside the host's root."""

    def __init__(self, chan: asyncssh.SSHServerChannel, root: Path) -> None:
        super().__init__(chan)
        self._root = os.fsencode(os.path.realpath(root))

    def _inside(self, local: bytes) -> bool:
        return local == self._root or local.startswith(self._root + b"/")

    def _is_ancestor(self, local: bytes) -> bool:
        return local == b"/" or self._root.startswith(local.rstrip(b"/") + b"/")

    def map_path(self, path: bytes) -> bytes:
        local = os.path.realpath(path)
        if not self._inside(local):
            raise asyncssh.SFTPPermissionDenied(f"{os.fsdecode(path)}: outside the host root")
        return local

    def stat(self, path: bytes) -> os.stat_result:
        local = os.path.realpath(path)
        if self._is_ancestor(local):
            return os.stat(local)
        return super().stat(path)

    def lstat(self, path: bytes) -> os.stat_result:
        local = os.path.realpath(path)
        if self._is_ancestor(local):
            return os.lstat(local)
        return super().lstat(path)


async def _pump_in(source: asyncssh.SSHReader, sink: asyncio.StreamWriter) -> None:
    """Client stdin → command stdin; a command that stops reading early is not an error."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        while data := await source.read(COPY_CHUNK):
            sink.write(data)
            await sink.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
        sink.close()


async def _pump_out(source: asyncio.StreamReader, sink: asyncssh.SSHWriter) -> None:
    while data := await source.read(COPY_CHUNK):
        sink.write(data)
        await sink.drain()


async def _run_command(
    spec: HostSpec, activity: Activity, process: asyncssh.SSHServerProcess
) -> None:
    if process.command is None or process.subsystem is not None:
        process.stderr.write(b"this host runs commands only, no interactive shell\n")
        process.exit(1)
        return
    task = asyncio.current_task()
    assert task is not None
    activity.commands.add(task)
    try:
        await _run_tracked_command(spec, activity, process)
    finally:
        activity.commands.discard(task)


async def _run_tracked_command(
    spec: HostSpec, activity: Activity, process: asyncssh.SSHServerProcess
) -> None:
    environment = {"HOME": str(spec.root), "PATH": DEFAULT_PATH}
    child = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        process.command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=spec.root,
        env=environment,
        start_new_session=True,  # so a dropped connection can stop the whole command group
    )
    assert child.stdin and child.stdout and child.stderr
    activity.track(child.pid)
    feeding = asyncio.ensure_future(_pump_in(process.stdin, child.stdin))
    try:
        await asyncio.gather(
            _pump_out(child.stdout, process.stdout), _pump_out(child.stderr, process.stderr)
        )
        status = await child.wait()
    except BaseException:
        # The client went away or the server is stopping: end the command, as sshd would.
        _kill_group(child.pid)
        await child.wait()
        raise
    finally:
        feeding.cancel()
        activity.command_groups.discard(child.pid)
    process.exit(status if status >= 0 else 128 - status)


def _load_keys(spec: HostSpec) -> tuple[asyncssh.SSHKey, asyncssh.SSHAuthorizedKeys]:
    try:
        host_key = asyncssh.read_private_key(spec.host_key)
    except (OSError, asyncssh.KeyImportError) as error:
        raise HostServerError(f"host {spec.host_id}: host_key {spec.host_key}: {error}") from None
    try:
        authorized = asyncssh.read_authorized_keys(str(spec.authorized_keys))
    except (OSError, ValueError) as error:
        raise HostServerError(
            f"host {spec.host_id}: authorized_keys {spec.authorized_keys}: {error}"
        ) from None
    return host_key, authorized


async def listen(spec: HostSpec, activity: Activity) -> asyncssh.SSHAcceptor:
    """Start serving `spec`; its connections and commands are tracked in `activity`."""
    host_key, authorized = _load_keys(spec)
    spec.root.mkdir(parents=True, exist_ok=True)
    try:
        return await asyncssh.create_server(
            partial(_HostServer, spec, authorized, activity),
            spec.address,
            spec.port,
            server_host_keys=[host_key],
            process_factory=partial(_run_command, spec, activity),
            sftp_factory=partial(RootedSFTPServer, root=spec.root),
            allow_scp=False,
            allow_pty=False,
            agent_forwarding=False,
            x11_forwarding=False,
            encoding=None,
            line_editor=False,
            reuse_address=True,
        )
    except OSError as error:
        raise HostServerError(
            f"host {spec.host_id}: cannot listen on {spec.address}:{spec.port}: {error.strerror}"
        ) from None
