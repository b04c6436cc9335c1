"""Snapshot transfer host to host: the source pushes the chunks the target lacks over OpenSSH.

The broker orchestrates and verifies, but no bulk byte passes through it: it asks the target
which chunks of the manifest it lacks, lists them on both hosts for this move, gives the
source a move-scoped certificate (`certificates.py`) and the target's pinned host key, and
has the source's helper stream the chunks with `ssh` into the target helper's `receive` (the
certificate's forced command), which verifies every chunk's SHA-256 before storing it. Then
the broker checks that the target's store holds every chunk of the manifest; the restore
verifies the manifest digest, each chunk and each file again.
"""

from __future__ import annotations

import contextlib
import logging
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import paramiko

from skyshard.runtime.client import ShardRuntime
from skyshard.transport import validate
from skyshard.transport.certificates import MoveGrant, TransferCA
from skyshard.transport.chunkstore import CorruptChunk, make_remote_dirs
from skyshard.transport.commands import RemotePath
from skyshard.transport.manifest import Manifest
from skyshard.transport.ssh import pinned_host_keys

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
    destination = target.session.endpoint
    grant = MoveGrant(
        move_id,
        destination.user,
        source.session.endpoint.address,
        target.receive_command(shard, move_id).line,
        CERTIFICATE_SECONDS,
    )
    credentials = ca.issue(grant)
    known_hosts = "".join(
        f"{destination.known_hosts_name} {key.get_name()} {key.get_base64()}\n"
        for key in pinned_host_keys(destination)
    )

    def progress(sent: int) -> None:
        if on_progress is not None:
            on_progress(Progress(sent, time.monotonic() - started))

    try:
        expected = "".join(f"{digest} {sizes[digest]}\n" for digest in needed)
        _write_move_files(target, move_id, {"expected": expected.encode()}, RECEIVE)
        files = {
            "key": credentials.private_key,
            "key-cert.pub": credentials.certificate,
            "known_hosts": known_hosts.encode(),
            "send": "".join(f"{digest}\n" for digest in needed).encode(),
        }
        _write_move_files(source, move_id, files, SEND)
        summary = source.push(shard, move_id, destination, stall_timeout=stall_timeout,
                              on_progress=progress)  # fmt: skip
    finally:
        for runtime, action in ((source, SEND), (target, RECEIVE)):
            _remove_move_files(runtime, move_id, action)
    still_missing = target.missing(shard, needed)
    if still_missing:
        raise CorruptChunk(
            f"{destination.label}: {len(still_missing)} chunks of manifest {manifest.digest} "
            f"missing after the transfer, e.g. {still_missing[0]} (source said {summary})"
        )
    content = sum(sizes[digest] for digest in needed)
    return SendReport(len(sizes), len(needed), summary["bytes"], content,
                      time.monotonic() - started)  # fmt: skip


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
