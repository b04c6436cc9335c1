"""Content-addressed, zstd-compressed chunk stores: the local one and a host's remote one."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path

import paramiko
import zstandard

from skyshard.transport import commands, store_helper, validate
from skyshard.transport.ssh import RemoteCommandFailed, SshError, SshSession

RECEIVE = "receive_migration"
HELPER_SOURCE = Path(store_helper.__file__)


class CorruptChunk(SshError):
    """Stored or transferred data that does not match its SHA-256; names the chunk(s)."""


class ChunkStore:
    """`<root>/chunks/ab/<sha256>` on this machine, shared by every shard and migration."""

    def __init__(self, root: Path, level: int = 3) -> None:
        self.root = root
        self._level = level

    def path(self, digest: str) -> Path:
        return store_helper.chunk_path(self.root, validate.chunk_hash(digest))

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def missing(self, digests: Iterable[str]) -> list[str]:
        return store_helper.missing(self.root, [validate.chunk_hash(d) for d in digests])

    def put(self, data: bytes) -> str:
        """Store a chunk (once) and return its SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        self.put_verified(digest, data)
        return digest

    def put_verified(self, digest: str, data: bytes) -> None:
        """Store a chunk whose SHA-256 the caller already computed."""
        path = self.path(digest)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary name so concurrent writers of the same chunk never collide.
        temporary = path.with_name(f".{digest}.{uuid.uuid4().hex}")
        temporary.write_bytes(zstandard.ZstdCompressor(level=self._level).compress(data))
        os.replace(temporary, path)

    def compressed(self, digest: str) -> bytes:
        """The stored zstd frame, as it goes over the wire."""
        return self.path(digest).read_bytes()

    def get(self, digest: str) -> bytes:
        """A chunk's content, verified against its hash."""
        try:
            return store_helper.read_chunk(self.root, validate.chunk_hash(digest))
        except store_helper.CorruptData as error:
            raise CorruptChunk(f"local store {self.root}: {error}") from None


class RemoteChunkStore:
    """The chunk store under `root` on a remote host, driven through the verified helper."""

    def __init__(self, session: SshSession, root: str) -> None:
        self.session = session
        self.root = commands.RemotePath(root)
        self._helper: commands.RemotePath | None = None

    def helper(self) -> commands.RemotePath:
        """Copy the store helper to `<root>/bin/` unless an identical copy is there.

        File operations go over SFTP (no remote shell); the copy is read back and checked
        against the local helper's SHA-256 before it is renamed into place.
        """
        if self._helper is not None:
            return self._helper
        source = HELPER_SOURCE.read_bytes()
        digest = hashlib.sha256(source).hexdigest()
        helper = self.root.child(f"bin/store-helper-{digest[:16]}.py")
        with self.session.open_sftp(action=RECEIVE) as sftp:
            if _remote_sha256(sftp, helper.text) != digest:
                upload = self.root.child(f"bin/.upload-{uuid.uuid4().hex}")
                make_remote_dirs(sftp, self.root.child("bin"))
                sftp.putfo(io.BytesIO(source), upload.text, confirm=False)
                if _remote_sha256(sftp, upload.text) != digest:
                    sftp.remove(upload.text)
                    raise CorruptChunk(f"{self.session.endpoint.label}: helper copy corrupted")
                sftp.posix_rename(upload.text, helper.text)
        self._helper = helper
        return helper

    def _helper_command(self, operation: str, *args: str) -> commands.RemoteCommand:
        python = self.session.endpoint.python
        return commands.run_helper(python, self.helper(), operation, self.root, *args)

    def missing(self, digests: Iterable[str]) -> list[str]:
        """Which of `digests` the host lacks, in one round trip."""
        wanted = [validate.chunk_hash(d) for d in digests]
        if not wanted:
            return []
        stdin = "".join(f"{d}\n" for d in wanted).encode()
        result = self.session.run(self._helper_command("missing"), action=RECEIVE, stdin=stdin)
        return [validate.chunk_hash(line) for line in result.stdout.decode().split()]

    def new_incoming(self, sftp: paramiko.SFTPClient) -> commands.RemotePath:
        """A fresh upload directory; `ingest` verifies its chunks and removes it."""
        incoming = self.root.child(f"incoming/{uuid.uuid4().hex}")
        make_remote_dirs(sftp, incoming)
        return incoming

    def ingest(self, incoming: commands.RemotePath) -> None:
        """Verify uploaded chunks on the host and move them into its store."""
        self._run_checked(self._helper_command("ingest", incoming.relative))

    def restore(self, manifest_json: bytes, digest: str, target: commands.RemotePath) -> bytes:
        """Rebuild and verify `target` from the manifest; returns the helper's JSON summary."""
        command = self._helper_command("restore", target.relative, digest)
        return self._run_checked(command, stdin=manifest_json)

    def _run_checked(self, command: commands.RemoteCommand, stdin: bytes = b"") -> bytes:
        try:
            return self.session.run(command, action=RECEIVE, stdin=stdin).stdout
        except RemoteCommandFailed as error:
            if error.exit_status == store_helper.EXIT_CORRUPT:
                raise CorruptChunk(str(error)) from None
            raise


def _remote_sha256(sftp: paramiko.SFTPClient, path: str) -> str | None:
    try:
        with sftp.open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except FileNotFoundError:
        return None


def make_remote_dirs(sftp: paramiko.SFTPClient, path: commands.RemotePath) -> None:
    """`mkdir -p` over SFTP."""
    current = ""
    for part in path.text.strip("/").split("/"):
        current += "/" + part
        try:
            sftp.mkdir(current)
        except OSError:
            if not stat.S_ISDIR(sftp.stat(current).st_mode or 0):
                raise
