"""Copy a self-contained script to `<root>/bin/` on a host over SFTP, verified by SHA-256."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

from skyshard.transport.chunkstore import CorruptChunk, make_remote_dirs
from skyshard.transport.commands import RemotePath
from skyshard.transport.ssh import SshSession


def _remote_sha256(sftp: object, path: str) -> str | None:
    try:
        with sftp.open(path, "rb") as handle:  # type: ignore[attr-defined]
            return hashlib.sha256(handle.read()).hexdigest()
    except FileNotFoundError:
        return None


def install_script(
    session: SshSession, root: RemotePath, source: Path, stem: str, *, action: str
) -> RemotePath:
    """`<root>/bin/<stem>-<sha16>.py`, uploaded unless an identical copy is already there.

    The name carries the content hash, so a changed script never overwrites one in use; the
    upload is read back and checked before it is renamed into place.
    """
    content = source.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    target = root.child(f"bin/{stem}-{digest[:16]}.py")
    with session.open_sftp(action=action) as sftp:
        if _remote_sha256(sftp, target.text) == digest:
            return target
        make_remote_dirs(sftp, root.child("bin"))
        upload = root.child(f"bin/.upload-{uuid.uuid4().hex}")
        sftp.putfo(io.BytesIO(content), upload.text, confirm=False)
        if _remote_sha256(sftp, upload.text) != digest:
            sftp.remove(upload.text)
            raise CorruptChunk(f"{session.endpoint.label}: copy of {source.name} corrupted")
        sftp.posix_rename(upload.text, target.text)
    return target
