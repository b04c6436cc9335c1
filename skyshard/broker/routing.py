"""The routing document pushed to hosts: every shard's host, endpoint and generation."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable

from skyshard.broker.ops_tables import Route
from skyshard.config.shards import Shard
from skyshard.transport.chunkstore import make_remote_dirs
from skyshard.transport.commands import RemotePath
from skyshard.transport.ssh import SshSession

ROUTING_FILE = "routing.json"


def routing_document(routes: Iterable[Route]) -> bytes:
    """Canonical JSON; a reader keeps, per shard, only the highest generation it has seen."""
    shards = {
        route.shard_id: {
            "host_id": route.host_id,
            "address": route.address,
            "port": route.port,
            "generation": route.generation,
        }
        for route in routes
    }
    return json.dumps({"version": 1, "shards": shards}, sort_keys=True, indent=1).encode()


def dependent_hosts(shards: Iterable[Shard], routes: Iterable[Route], shard_id: str) -> set[str]:
    """Hosts running a shard that depends on `shard_id`: they call it, so they need its new
    address after a move."""
    routed = {route.shard_id: route.host_id for route in routes}
    return {
        routed[shard.id]
        for shard in shards
        if shard.id in routed and any(d.shard_id == shard_id for d in shard.depends_on)
    }


def push_routing(session: SshSession, root: str, document: bytes) -> str:
    """Write `<root>/routing.json` on a host atomically (upload, then rename); returns its path."""
    base = RemotePath(root)
    target = base.child(ROUTING_FILE)
    with session.open_sftp(action="push_routing") as sftp:
        make_remote_dirs(sftp, base)
        upload = base.child(f".{ROUTING_FILE}.{uuid.uuid4().hex}")
        sftp.putfo(io.BytesIO(document), upload.text, confirm=True)
        sftp.posix_rename(upload.text, target.text)
    return target.text
