"""Snapshot transfer host to host: the source pushes the chunks the target lacks over OpenSSH.

The broker orchestrates and verifies, but no bulk byte passes through it. It gives the source
a move-scoped certificate (`certificates.py`) and the target's pinned host key, and has the
source's helper stream chunks with `ssh` into the target helper's `receive` (the certificate's
forced command), which verifies every chunk's SHA-256 before storing it. Two ways:

* `send_between_hosts`: a manifest already cut; the broker asks the target which chunks it
  lacks and lists exactly those on both hosts (the frozen round of a cutover).
* `stream_snapshot_between_hosts`: the source cuts the snapshot and sends each chunk the
  target's store lacks (its inventory) as soon as it is cut, so hashing on the source,
  `ssh`, and receiving on the target overlap (the pre-copy rounds).

Either way the broker then checks that the target's store holds every chunk of the manifest;
the restore verifies the manifest digest and each file again.
"""

from __future__ import annotations

import contextlib
import logging
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import paramiko

from skyshard.runtime.client import ShardRuntime
from skyshard.transport import validate
from skyshard.transport.certificates import MoveGrant, TransferCA
from skyshard.transport.chunkstore import CorruptChunk, make_remote_dirs
from skyshard.transport.commands import RemotePath
from skyshard.transport.manifest import Manifest
from skyshard.transport.ssh import SshEndpoint, pinned_host_keys

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SEND = "send_migration"
RECEIVE = "receive_migration"
# sshd checks a certificate's validity at login only, and the source logs in right after the
# certificate is issued, so minutes suffice however long the transfer then takes.
CERTIFICATE_SECONDS = 300


@dataclass(frozen=True)
class Progress:
    """Sent so far: compressed bytes on the wire, and the seconds since the transfer began."""

    bytes_sent: int
    seconds: float

    @property
    def rate(self) -> float:
        """Bytes per second since the transfer started."""
        return self.bytes_sent / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class SendReport:
    """What one transfer did: chunks already on the target were skipped."""

    chunks_in_manifest: int
    chunks_sent: int
    bytes_sent: int
    content_bytes_sent: int
    seconds: float


def send_between_hosts(
    source: ShardRuntime,
    target: ShardRuntime,
    manifest: Manifest,
    *,
    move_id: str,
    ca: TransferCA,
    on_progress: Callable[[Progress], None] | None = None,
    stall_timeout: float = 30.0,
) -> SendReport:
    """Send the chunks of `manifest` that `target`'s store lacks from `source`'s store."""
    validate.node_id(move_id, "move_id")
    started = time.monotonic()
    shard = manifest.shard_id
    sizes = manifest.chunk_sizes()
    needed = target.missing(shard, sizes)
    if not needed:
        return SendReport(len(sizes), 0, 0, 0, time.monotonic() - started)
    listed = "".join(f"{digest} {sizes[digest]}\n" for digest in needed).encode()

    def push(destination: SshEndpoint, progress: Callable[[int], None]) -> dict:
        return source.push(shard, move_id, destination, stall_timeout=stall_timeout,
                           on_progress=progress)  # fmt: skip

    summary = _transfer(source, target, shard, move_id, ca, listed, {"send": listed}, push,
                        _progress(on_progress, started))  # fmt: skip
    _check_arrived(target, manifest, needed, summary)
    content = sum(sizes[digest] for digest in needed)
    return SendReport(len(sizes), len(needed), summary["bytes"], content,
                      time.monotonic() - started)  # fmt: skip


def stream_snapshot_between_hosts(
    source: ShardRuntime,
    target: ShardRuntime,
    shard_id: str,
    *,
    move_id: str,
    ca: TransferCA,
    budget: int,
    on_progress: Callable[[Progress], None] | None = None,
    stall_timeout: float = 30.0,
) -> tuple[Manifest, SendReport]:
    """Snapshot the shard on `source` and send each chunk `target`'s store lacks while the
    snapshot goes on cutting (no write-then-reread before the first byte leaves).

    The target's store inventory is the source's `have` list; the target takes any chunk
    that verifies, each once, up to `budget` bytes on the wire (the broker's bound from the
    source's state size, so a compromised source cannot fill the target's disk beyond what
    the move needs). Afterwards the target must hold every chunk of the manifest."""
    validate.node_id(move_id, "move_id")
    started = time.monotonic()
    have = "".join(f"{digest}\n" for digest in target.inventory(shard_id)).encode()

    def push(destination: SshEndpoint, progress: Callable[[int], None]) -> tuple[Manifest, dict]:
        return source.stream_snapshot(
            shard_id, move_id, destination, stall_timeout=stall_timeout, on_progress=progress
        )

    expected = f"stream {budget}\n".encode()
    files = {"have": have}
    manifest, summary = _transfer(source, target, shard_id, move_id, ca, expected, files, push,
                                  _progress(on_progress, started))  # fmt: skip
    _check_arrived(target, manifest, list(manifest.chunk_sizes()), summary)
    report = SendReport(len(manifest.chunk_sizes()), summary["chunks"], summary["bytes"],
                        summary["content"], time.monotonic() - started)  # fmt: skip
    return manifest, report


def send_whole_between_hosts(
    source: ShardRuntime,
    target: ShardRuntime,
    shard_id: str,
    *,
    move_id: str,
    ca: TransferCA,
    budget: int,
    on_progress: Callable[[Progress], None] | None = None,
    stall_timeout: float = 30.0,
) -> SendReport:
    """The first-copy fast path: the source sends each state file raw, no chunking, and the
    target writes it straight into a new state tree, refusing the lot unless every file's
    SHA-256 (computed on both ends) matches and the total stays within `budget` bytes.
    The move's later snapshots list these files whole while they stay unchanged."""
    validate.node_id(move_id, "move_id")
    started = time.monotonic()

    def push(destination: SshEndpoint, progress: Callable[[int], None]) -> dict:
        return source.push(shard_id, move_id, destination, stall_timeout=stall_timeout,
                           on_progress=progress, whole=True)  # fmt: skip

    expected = f"whole {budget}\n".encode()
    summary = _transfer(source, target, shard_id, move_id, ca, expected, {}, push,
                        _progress(on_progress, started))  # fmt: skip
    received = summary["target"]
    if (received["chunks"], received["bytes"]) != (summary["chunks"], summary["bytes"]):
        raise CorruptChunk(f"{target.session.endpoint.label}: received {received}, source sent "
                           f"{summary['chunks']} files, {summary['bytes']} bytes")  # fmt: skip
    return SendReport(summary["chunks"], summary["chunks"], summary["bytes"], summary["content"],
                      time.monotonic() - started)  # fmt: skip


def _progress(
    on_progress: Callable[[Progress], None] | None, started: float
) -> Callable[[int], None]:
    def progress(sent: int) -> None:
        if on_progress is not None:
            on_progress(Progress(sent, time.monotonic() - started))

    return progress


def _transfer(
    source: ShardRuntime,
    target: ShardRuntime,
    shard_id: str,
    move_id: str,
    ca: TransferCA,
    expected: bytes,
    listed: Mapping[str, bytes],
    push: Callable[[SshEndpoint, Callable[[int], None]], _T],
    progress: Callable[[int], None],
) -> _T:
    """Give the target its `expected` file and the source a certificate for this move, the
    target's pinned host key and `listed` files; run `push`; always remove the move's files."""
    destination = target.session.endpoint
    grant = MoveGrant(
        move_id,
        destination.user,
        source.session.endpoint.address,
        target.receive_command(shard_id, move_id).line,
        CERTIFICATE_SECONDS,
    )
    credentials = ca.issue(grant)
    known_hosts = "".join(
        f"{destination.known_hosts_name} {key.get_name()} {key.get_base64()}\n"
        for key in pinned_host_keys(destination)
    )
    try:
        _write_move_files(target, move_id, {"expected": expected}, RECEIVE)
        files = {
            "key": credentials.private_key,
            "key-cert.pub": credentials.certificate,
            "known_hosts": known_hosts.encode(),
            **listed,
        }
        _write_move_files(source, move_id, files, SEND)
        return push(destination, progress)
    finally:
        for runtime, action in ((source, SEND), (target, RECEIVE)):
            _remove_move_files(runtime, move_id, action)


def _check_arrived(
    target: ShardRuntime, manifest: Manifest, needed: list[str], summary: dict
) -> None:
    still_missing = target.missing(manifest.shard_id, needed)
    if still_missing:
        raise CorruptChunk(
            f"{target.session.endpoint.label}: {len(still_missing)} chunks of manifest "
            f"{manifest.digest} missing after the transfer, e.g. {still_missing[0]} "
            f"(source said {summary})"
        )


def _move_path(runtime: ShardRuntime, move_id: str) -> RemotePath:
    return runtime.root.child(f"moves/{move_id}")


def _write_move_files(
    runtime: ShardRuntime, move_id: str, files: Mapping[str, bytes], action: str
) -> None:
    """Write each file under `<root>/moves/<move_id>/`, mode 0600 before any byte lands."""
    directory = _move_path(runtime, move_id)
    with runtime.session.open_sftp(action=action) as sftp:
        make_remote_dirs(sftp, directory)
        sftp.chmod(directory.text, 0o700)
        for name, content in files.items():
            path = directory.child(name).text
            with sftp.open(path, "wb") as handle:
                handle.chmod(0o600)
                handle.write(content)


def _remove_move_files(runtime: ShardRuntime, move_id: str, action: str) -> None:
    """Delete the move's files (key included); best effort, a failure is logged."""
    directory = _move_path(runtime, move_id).text
    try:
        with runtime.session.open_sftp(action=action) as sftp:
            _remove_tree(sftp, directory)
    except (OSError, paramiko.SSHException) as error:
        log.warning("%s: could not remove %s: %r", runtime.session.endpoint.label, directory,
                    error)  # fmt: skip


def _remove_tree(sftp: paramiko.SFTPClient, directory: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        for entry in sftp.listdir_attr(directory):
            path = f"{directory}/{entry.filename}"
            if stat.S_ISDIR(entry.st_mode or 0):
                _remove_tree(sftp, path)
            else:
                sftp.remove(path)
        sftp.rmdir(directory)
