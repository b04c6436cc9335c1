"""Chunks read from a source host's store, relayed by the broker to the target host."""

from __future__ import annotations

import threading

import paramiko

from skyshard.transport import validate
from skyshard.transport.commands import RemotePath
from skyshard.transport.ssh import SshSession


class HostChunkSource:
    """The `compressed(digest)` side of a chunk store, served from `<root>/chunks` on a host.

    `send_snapshot` uploads from several threads; each thread reads over its own SFTP channel
    (paramiko channels are not meant to be shared between threads).
    """

    def __init__(self, session: SshSession, root: str) -> None:
        self.session = session
        self.root = RemotePath(root)
        self._local = threading.local()
        self._channels: list[paramiko.SFTPClient] = []
        self._lock = threading.Lock()

    def _sftp(self) -> paramiko.SFTPClient:
        sftp = getattr(self._local, "sftp", None)
        if sftp is None:
            sftp = self.session.open_sftp(action="send_migration")
            self._local.sftp = sftp
            with self._lock:
                self._channels.append(sftp)
        return sftp

    def compressed(self, digest: str) -> bytes:
        digest = validate.chunk_hash(digest)
        path = self.root.child(f"chunks/{digest[:2]}/{digest}").text
        with self._sftp().open(path, "rb") as handle:
            handle.prefetch()
            return handle.read()

    def close(self) -> None:
        with self._lock:
            for sftp in self._channels:
                sftp.close()
            self._channels.clear()
        self._local = threading.local()
