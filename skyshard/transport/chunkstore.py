"""Chunk store errors and remote directory creation shared by the host transfer and installs.

The store itself lives on each host (`<root>/chunks/ab/<sha256>`, zstd frames) and is written
and read only by the host helper (`runtime/host_helper.py`)."""

from __future__ import annotations

import stat

import paramiko

from skyshard.transport import commands
from skyshard.transport.ssh import SshError


class CorruptChunk(SshError):
    """Stored or transferred data that does not match its SHA-256; names the chunk(s)."""


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
