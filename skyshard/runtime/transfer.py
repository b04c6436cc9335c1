"""Snapshot transfer host to host: the source pushes the chunks the target lacks over OpenSSH.

The broker orchestrates and verifies, but no bulk byte passes through it. It gives the source
a move-scoped certificate (`certificates.py`) and the target's pinned host key, and has the
source's helper stream chunks with `ssh` into the target helper's `receive` (the certificate's
forced command), which verifies every chunk's SHA-256 before storing it. One entry point,
`send_between_hosts`, three modes:

* DELTA: a manifest already cut; the broker asks the target which chunks it lacks and lists
  exactly those on both hosts (the frozen round of a cutover).
* STREAM: the source cuts the snapshot and sends each chunk the target's store lacks (its
  inventory) as soon as it is cut, so hashing on the source, `ssh`, and receiving on the
  target overlap (the pre-copy rounds).
* WHOLE: the first copy to a target whose store holds little: every state file raw, each
  file's SHA-256 checked on arrival, no chunking.

For chunks the broker then checks that the target's store holds every chunk of the manifest;
the restore verifies the manifest digest and each file again.
"""

from __future__ import annotations

import contextlib
import logging
import stat
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum

import paramiko

from skyshard.runtime.client import ShardRuntime
from skyshard.transport import validate
from skyshard.transport.certificates import MoveGrant, TransferCA
from skyshard.transport.chunkstore import CorruptChunk, make_remote_dirs
from skyshard.transport.commands import RemotePath
from skyshard.transport.manifest import Manifest
from skyshard.transport.ssh import SshEndpoint, pinned_host_keys

log = logging.getLogger(__name__)

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


class SendMode(Enum):
    """What a transfer sends (see the module docstring)."""

    DELTA = "delta"
    STREAM = "stream"
    WHOLE = "whole"


@dataclass(frozen=True)
class SendReport:
    """What one transfer did: chunks already on the target were skipped. `manifest`: the
    snapshot a STREAM transfer cut; `changed_after`: for WHOLE, the bytes of state files
    changed or new on the source since they were sent (its stat pass after the last byte)."""

    chunks_in_manifest: int
    chunks_sent: int
    bytes_sent: int
    content_bytes_sent: int
    seconds: float
    manifest: Manifest | None = None
    changed_after: int | None = None


def send_between_hosts(
    source: ShardRuntime,
    target: ShardRuntime,
    shard_id: str,
    mode: SendMode,
    *,
    move_id: str,
    ca: TransferCA,
    manifest: Manifest | None = None,
    budget: int = 0,
    on_progress: Callable[[Progress], None] | None = None,
    stall_timeout: float = 30.0,
) -> SendReport:
    """Send shard `shard_id` from `source` to `target` as `mode` says: DELTA, the chunks of
    `manifest` the target's store lacks; STREAM, a snapshot cut on the source with each chunk
    the target's store lacks (its inventory) sent as soon as it is cut; WHOLE, every state
    file raw into a new state tree on the target, which refuses the lot unless every file's
    SHA-256 (computed on both ends) matches. STREAM and WHOLE are bounded by `budget` bytes on
    the wire (the broker's bound from the source's state size, so a compromised source cannot
    fill the target's disk beyond what the move needs)."""
    validate.node_id(move_id, "move_id")
    if manifest is None and mode is SendMode.DELTA:
        raise ValueError("mode DELTA sends a manifest's chunks: no manifest given")
    if manifest is not None and mode is not SendMode.DELTA:
        raise ValueError(f"a manifest goes with mode DELTA only, not {mode.name}")
    started = time.monotonic()
    needed: list[str] = []
    if manifest is not None:
        sizes = manifest.chunk_sizes()
        needed = target.missing(shard_id, sizes)
        if not needed:
            return SendReport(len(sizes), 0, 0, 0, time.monotonic() - started)
        expected = "".join(f"{digest} {sizes[digest]}\n" for digest in needed).encode()
        listed = {"send": expected}
    elif mode is SendMode.STREAM:
        expected = f"stream {budget}\n".encode()
        listed = {"have": "".join(f"{d}\n" for d in target.inventory(shard_id)).encode()}
    else:
        expected, listed = f"whole {budget}\n".encode(), {}

    def push(destination: SshEndpoint, progress: Callable[[int], None]) -> dict:
        return source.push(shard_id, move_id, destination, mode.value,
                           stall_timeout=stall_timeout, on_progress=progress)  # fmt: skip

    summary = _transfer(source, target, shard_id, move_id, ca, expected, listed, push,
                        _progress(on_progress, started))  # fmt: skip
    seconds = time.monotonic() - started
    if manifest is not None:
        _check_arrived(target, manifest, needed, summary)
        content = sum(sizes[digest] for digest in needed)
        return SendReport(len(sizes), len(needed), summary["bytes"], content, seconds)
    if mode is SendMode.STREAM:
        cut: Manifest = summary["manifest"]
        _check_arrived(target, cut, list(cut.chunk_sizes()), summary)
        return SendReport(len(cut.chunk_sizes()), summary["chunks"], summary["bytes"],
                          summary["content"], seconds, manifest=cut)  # fmt: skip
    received = summary["target"]
    if (received["chunks"], received["bytes"]) != (summary["chunks"], summary["bytes"]):
        raise CorruptChunk(f"{target.session.endpoint.label}: received {received}, source sent "
                           f"{summary['chunks']} files, {summary['bytes']} bytes")  # fmt: skip
    return SendReport(summary["chunks"], summary["chunks"], summary["bytes"], summary["content"],
                      seconds, changed_after=int(summary["changed"]))  # fmt: skip


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
    push: Callable[[SshEndpoint, Callable[[int], None]], dict],
    progress: Callable[[int], None],
) -> dict:
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
    files = {
        "key": credentials.private_key,
        "key-cert.pub": credentials.certificate,
        "known_hosts": known_hosts.encode(),
        **listed,
    }
    # Both hosts at once: each is one SFTP round trip or more, on the move's critical path.
    try:
        with ThreadPoolExecutor(max_workers=1) as other_host:
            written = other_host.submit(
                _write_move_files, target, move_id, {"expected": expected}, RECEIVE
            )
            _write_move_files(source, move_id, files, SEND)
            written.result()
        return push(destination, progress)
    finally:
        with ThreadPoolExecutor(max_workers=1) as other_host:
            removed = other_host.submit(_remove_move_files, target, move_id, RECEIVE)
            _remove_move_files(source, move_id, SEND)
            removed.result()


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
