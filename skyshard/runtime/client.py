"""Broker-side control of shards on a host: every operation is one run of the verified helper."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from skyshard.demo_kv import server as demo_kv_server
from skyshard.runtime import host_helper
from skyshard.runtime.install import install_script
from skyshard.transport import validate
from skyshard.transport.chunkstore import CorruptChunk
from skyshard.transport.commands import RemoteCommand, RemotePath, python_interpreter
from skyshard.transport.manifest import Manifest
from skyshard.transport.ssh import RemoteCommandFailed, SshEndpoint, SshError, SshSession
from skyshard.transport.validate import ValidationError

# Which access-policy actions each helper operation needs (all are checked).
ACTIONS = {
    "start": ("start_shard",),
    "adopt": ("start_shard",),
    "stop": ("stop_shard",),
    "clean": ("stop_shard",),
    "freeze": ("freeze_shard",),
    "thaw": ("freeze_shard",),
    "status": ("read_telemetry",),
    "health": ("read_telemetry",),
    "snapshot": ("send_migration",),
    "freeze-snapshot": ("freeze_shard", "send_migration"),
    "restore": ("receive_migration",),
    "handover": ("receive_migration", "start_shard", "read_telemetry"),
    "missing": ("receive_migration",),
    "inventory": ("receive_migration",),
    "push": ("send_migration",),
    "receive": ("receive_migration",),
}
ISOLATIONS = ("auto", "cgroup", "signals")
# Seconds `inventory` waits for a background index (about 10 CPU-s per GiB on the helper).
INDEX_WAIT = 120.0


class ShardUnhealthy(SshError):
    """The shard did not answer its health check in time (or is not running)."""


class FenceRefused(SshError):
    """The host refused an operation that would break the one-copy rule (see docs)."""


class HandoverAborted(SshError):
    """A handover ended without its start order: the state is restored, nothing started."""


class ToolMissing(SshError):
    """The host lacks a tool a snapshot needs (zstd: neither the module nor the command)."""


@dataclass(frozen=True)
class ShardLimits:
    """cgroup limits applied where the host supports cgroups; 0 means no limit."""

    cpu_millicores: int = 0
    memory_bytes: int = 0


@dataclass(frozen=True)
class ShardStatus:
    shard_id: str
    running: bool
    pid: int | None
    frozen: bool
    isolation: str
    generation: int
    state_exists: bool
    state_bytes: int
    root_free_bytes: int


def _count(value: object, field: str) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValidationError(field, value, "must be a non-negative integer")
    return str(value)


def _port(value: object, field: str = "port") -> str:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise ValidationError(field, value, "must be an integer in 1..65535")
    return str(value)


class ShardRuntime:
    """Shards below `root` on the host behind `session` (one helper run per operation)."""

    def __init__(self, session: SshSession, root: str) -> None:
        self.session = session
        self.root = RemotePath(root)
        self._scripts: dict[str, RemotePath] = {}

    def _script(self, stem: str, source: Path, action: str) -> RemotePath:
        if stem not in self._scripts:
            self._scripts[stem] = install_script(
                self.session, self.root, source, stem, action=action
            )
        return self._scripts[stem]

    def command(self, operation: str, shard_id: str, *options: str) -> RemoteCommand:
        """The helper command line: every value validated, then quoted by RemoteCommand."""
        if operation not in ACTIONS:
            raise ValidationError("operation", operation, f"not one of {sorted(ACTIONS)}")
        validate.shard_id(shard_id)
        helper = self._script("runtime-helper", Path(host_helper.__file__), ACTIONS[operation][0])
        python = python_interpreter(self.session.endpoint.python)
        argv = (python, helper.text, operation, self.root.text, shard_id, *options)
        return RemoteCommand(f"runtime {operation} {shard_id}", argv)

    def install(self) -> None:
        """Copy (or check) the helper and the workload now, so no later operation pays for it."""
        self._script("runtime-helper", Path(host_helper.__file__), "read_telemetry")
        self._script("demo-kv", Path(demo_kv_server.__file__), "start_shard")

    def _authorize(self, operation: str) -> str:
        """Check every action but the last (which `SshSession.run` checks); return that one."""
        *others, last = ACTIONS[operation]
        for action in others:
            self.session.authorize(action)
        return last

    def _run(
        self,
        operation: str,
        shard_id: str,
        *options: str,
        stdin: bytes = b"",
        on_line: Callable[[bytes], None] | None = None,
    ) -> bytes:
        action = self._authorize(operation)  # before `command` connects to install the helper
        command = self.command(operation, shard_id, *options)
        try:
            result = self.session.run(command, action=action, stdin=stdin, on_line=on_line)
        except RemoteCommandFailed as error:
            raise _classify(error) from None
        return result.stdout

    def _json(self, operation: str, shard_id: str, *options: str, stdin: bytes = b"") -> dict:
        return json.loads(self._run(operation, shard_id, *options, stdin=stdin))

    def start(
        self,
        shard_id: str,
        port: int,
        *,
        generation: int,
        bind: str = "127.0.0.1",
        limits: ShardLimits = ShardLimits(),
        isolation: str = "auto",
    ) -> ShardStatus:
        """Start the demo workload for `shard_id` on `port`, fenced at `generation`."""
        options = self._start_options(shard_id, port, generation, bind, limits, isolation)
        return _status(self._json("start", shard_id, *options))

    def _start_options(
        self,
        shard_id: str,
        port: int,
        generation: int,
        bind: str,
        limits: ShardLimits,
        isolation: str,
    ) -> tuple[str, ...]:
        validate.shard_id(shard_id)
        if isolation not in ISOLATIONS:
            raise ValidationError("isolation", isolation, f"not one of {ISOLATIONS}")
        options = (
            "--port",
            _port(port),
            "--generation",
            _count(generation, "generation"),
            "--bind",
            validate.address(bind, "bind"),
            "--cpu-millicores",
            _count(limits.cpu_millicores, "cpu_millicores"),
            "--memory-bytes",
            _count(limits.memory_bytes, "memory_bytes"),
            "--isolation",
            isolation,
        )
        app = self._script("demo-kv", Path(demo_kv_server.__file__), "start_shard")
        return (*options, "--app", app.relative)

    def adopt(
        self, shard_id: str, *, pid: int, state: str, port: int, generation: int, bind: str
    ) -> ShardStatus:
        """Take over a copy started outside skyshard: process `pid` (leading its own process
        group, naming `state` on its command line) serving on `bind`:`port`."""
        options = (
            "--pid", _count(pid, "pid"), "--state", validate.remote_root(state, "state"),
            "--port", _port(port), "--generation", _count(generation, "generation"),
            "--bind", validate.address(bind, "bind"),
        )  # fmt: skip
        return _status(self._json("adopt", shard_id, *options))

    def stop(self, shard_id: str, *, kill: bool = False) -> ShardStatus:
        return _status(self._json("stop", shard_id, *(["--kill"] if kill else [])))

    def freeze(self, shard_id: str) -> ShardStatus:
        return _status(self._json("freeze", shard_id))

    def thaw(self, shard_id: str) -> ShardStatus:
        return _status(self._json("thaw", shard_id))

    def status(self, shard_id: str) -> ShardStatus:
        return _status(self._json("status", shard_id))

    def health(self, shard_id: str, port: int, timeout: float = 10.0) -> dict:
        """The shard's /health answer; raises ShardUnhealthy after `timeout` seconds."""
        seconds = f"{float(timeout):g}"
        return self._json("health", shard_id, "--port", _port(port), "--timeout", seconds)

    def clean(self, shard_id: str, *, index: bool = False) -> None:
        """Stop the shard if it runs and delete its directory on this host (with `index`,
        after a detached helper run has cut its state into the host's chunk store)."""
        self._json("clean", shard_id, *(["--index"] if index else []))

    def snapshot(self, shard_id: str) -> Manifest:
        """Chunk the shard's state into the host's store; the manifest of what it holds now."""
        return self._manifest(shard_id, self._run("snapshot", shard_id))

    def freeze_and_snapshot(self, shard_id: str, move_id: str = "") -> Manifest:
        """Freeze the shard, then snapshot it, in one helper run (the start of a cutover);
        files move `move_id` sent whole and unchanged since are listed whole."""
        options = ("--move", validate.node_id(move_id, "move_id")) if move_id else ()
        return self._manifest(shard_id, self._run("freeze-snapshot", shard_id, *options))

    def _manifest(self, shard_id: str, data: bytes) -> Manifest:
        manifest = Manifest.from_json(data)
        if manifest.shard_id != shard_id:
            raise ValidationError("manifest.shard_id", manifest.shard_id, f"expected {shard_id}")
        return manifest

    def missing(self, shard_id: str, digests: Iterable[str]) -> list[str]:
        """Which of `digests` the host's chunk store lacks, in one round trip."""
        wanted = [validate.chunk_hash(digest) for digest in digests]
        if not wanted:
            return []
        stdin = "".join(f"{digest}\n" for digest in wanted).encode()
        found = self._json("missing", shard_id, stdin=stdin)["missing"]
        return [validate.chunk_hash(digest) for digest in found]

    def inventory(self, shard_id: str, wait: float = INDEX_WAIT) -> list[str]:
        """Every chunk hash in the host's store (what a streamed snapshot need not send),
        after waiting up to `wait` seconds for a background index of an old state tree."""
        found = self._json("inventory", shard_id, "--timeout", f"{float(wait):g}")["chunks"]
        return [validate.chunk_hash(digest) for digest in found]

    def receive_command(self, shard_id: str, move_id: str) -> RemoteCommand:
        """The command a move's certificate forces on this (target) host."""
        return self.command("receive", shard_id, "--move", validate.node_id(move_id, "move_id"))

    def push(
        self,
        shard_id: str,
        move_id: str,
        target: SshEndpoint,
        mode: str,
        *,
        stall_timeout: float,
        on_progress: Callable[[int], None],
    ) -> dict:
        """Have this (source) host send to `target` over OpenSSH `ssh`: with mode "delta", the
        chunks listed in the move's files; "stream", a snapshot cut while each chunk the
        target lacks is sent (the summary's `manifest` is then the parsed Manifest); "whole",
        every state file raw, each with its SHA-256. `on_progress(bytes)` sees the host's
        progress reports. Returns its summary."""
        flags = {"delta": (), "stream": ("--snapshot",), "whole": ("--whole",)}[mode]
        options = (
            "--move", validate.node_id(move_id, "move_id"),
            "--to-address", validate.address(target.address, "address"),
            "--to-port", _port(target.port), "--to-user", validate.user(target.user),
            "--timeout", f"{float(stall_timeout):g}", *flags,
        )  # fmt: skip

        def on_line(line: bytes) -> None:
            document = json.loads(line)
            if "progress" in document:
                on_progress(int(document["progress"]))

        output = self._run("push", shard_id, *options, on_line=on_line)
        summary = json.loads(output.splitlines()[-1])
        if "manifest" in summary:
            summary["manifest"] = self._manifest(shard_id, summary["manifest"].encode("ascii"))
        return summary

    def restore(self, manifest: Manifest, *, full_verify: bool = False) -> dict:
        """Rebuild the shard's state from chunks already in the host's store, verified."""
        options = ["--digest", manifest.digest, *(["--full-verify"] if full_verify else [])]
        return self._json("restore", manifest.shard_id, *options, stdin=manifest.to_json())

    def handover(
        self,
        manifest: Manifest,
        port: int,
        *,
        generation: int,
        bind: str = "127.0.0.1",
        limits: ShardLimits = ShardLimits(),
        isolation: str = "auto",
        health_timeout: float = 10.0,
        full_verify: bool = False,
    ) -> Handover:
        """Begin the target's cutover: it restores `manifest` now, and starts (fenced at
        `generation`) and health-checks only on `Handover.start()`. Use it as a context
        manager: leaving without `start()` leaves nothing started."""
        shard_id = manifest.shard_id
        action = self._authorize("handover")  # every grant before any connection
        options = self._start_options(shard_id, port, generation, bind, limits, isolation)
        options += ("--digest", manifest.digest, "--timeout", f"{float(health_timeout):g}")
        options += ("--full-verify",) if full_verify else ()
        command = self.command("handover", shard_id, *options)
        return Handover(self.session, command, action, manifest.to_json())


class Handover:
    """The broker's end of one `handover` helper run: a channel kept open between the restore
    and the start order, so the target's whole cutover costs one remote command."""

    def __init__(
        self, session: SshSession, command: RemoteCommand, action: str, manifest_json: bytes
    ) -> None:
        if b"\n" in manifest_json:
            raise ValidationError("manifest", "...", "canonical JSON must be one line")
        session.authorize(action)
        self.label = f"{session.endpoint.label}: {command.operation}"
        self.timeout = session.pool.settings.command_timeout
        transport = session.pool.client(session.endpoint).get_transport()
        assert transport is not None
        self._channel = transport.open_session(timeout=session.pool.settings.connect_timeout)
        self._channel.settimeout(self.timeout)
        self._stdout = self._channel.makefile("rb")
        self._ordered = False
        self._channel.exec_command(command.line)
        self._channel.sendall(manifest_json + b"\n")

    def __enter__(self) -> Handover:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def restored(self) -> dict:
        """Wait for the restore summary (the state is verified, nothing is started yet)."""
        return self._line("restored")

    def start(self) -> ShardStatus:
        """Give the start order; returns once the copy is started (not yet healthy)."""
        self._channel.sendall(host_helper.START_ORDER)
        self._ordered = True
        self._channel.shutdown_write()
        return _status(self._line("started"))

    def healthy(self) -> dict:
        """Wait for the health answer; the run must then have ended cleanly."""
        answer = self._line("healthy")
        status = self._exit_status()
        if status != 0:
            raise self._failure(status)
        return answer

    def close(self) -> None:
        """Without a start order the helper exits on the closed stdin having started nothing;
        wait for that, so nothing of this run races a rollback that follows."""
        if not self._channel.closed:
            if not self._ordered:
                self._channel.shutdown_write()
            self._channel.status_event.wait(self.timeout)
            self._channel.close()

    def _line(self, key: str) -> dict:
        try:
            line = self._stdout.readline()
        except TimeoutError as error:
            raise RemoteCommandFailed(
                f"{self.label} timed out after {self.timeout}s", -1, ""
            ) from error
        if not line:
            raise self._failure(self._exit_status())
        document = json.loads(line)
        if key not in document:
            raise ValidationError("handover output", line[:200], f"expected {key!r}")
        return document[key]

    def _exit_status(self) -> int:
        if not self._channel.status_event.wait(self.timeout):
            raise RemoteCommandFailed(f"{self.label} did not exit in {self.timeout}s", -1, "")
        return self._channel.recv_exit_status()

    def _failure(self, status: int) -> SshError:
        stderr = self._channel.makefile_stderr("rb").read().decode(errors="replace").strip()
        stderr = stderr[-2000:]
        return _classify(
            RemoteCommandFailed(f"{self.label} exited {status}: {stderr}", status, stderr)
        )


def _status(document: dict) -> ShardStatus:
    fields = ShardStatus.__dataclass_fields__
    return ShardStatus(**{name: document[name] for name in fields})


def _classify(error: RemoteCommandFailed) -> SshError:
    kinds = {
        host_helper.EXIT_CORRUPT: CorruptChunk,
        host_helper.EXIT_UNHEALTHY: ShardUnhealthy,
        host_helper.EXIT_FENCED: FenceRefused,
        host_helper.EXIT_NOT_STARTED: HandoverAborted,
        host_helper.EXIT_MISSING_TOOL: ToolMissing,
    }
    kind = kinds.get(error.exit_status)
    return kind(str(error)) if kind else error
