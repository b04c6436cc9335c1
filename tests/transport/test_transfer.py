"""Snapshot send, delta send, restore and corruption detection against a real sshd."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest
from conftest import endpoint_for

from skyshard.transport.chunking import ChunkParams
from skyshard.transport.chunkstore import ChunkStore, CorruptChunk, RemoteChunkStore
from skyshard.transport.ssh import SshSession
from skyshard.transport.transfer import (
    Progress,
    restore_snapshot,
    send_snapshot,
    take_snapshot,
)
from skyshard.transport.validate import ValidationError
from tests.support.sshd import free_tcp_port

SMALL = ChunkParams(min_size=4096, avg_size=16384, max_size=65536)
STATE_SIZE = 4 << 20


def write_state(state: Path) -> None:
    (state / "db").mkdir(parents=True)
    (state / "db" / "data.bin").write_bytes(random.Random(5).randbytes(STATE_SIZE))
    (state / "meta.json").write_text('{"keys": 3}')
    (state / "db" / "wal").write_bytes(b"")
    (state / "meta.json").chmod(0o600)


def assert_same_tree(source: Path, copy: Path) -> None:
    names = sorted(p.relative_to(source) for p in source.rglob("*"))
    assert names == sorted(p.relative_to(copy) for p in copy.rglob("*"))
    for name in names:
        if (source / name).is_file():
            assert (source / name).read_bytes() == (copy / name).read_bytes()
            mode = stat.S_IMODE((source / name).stat().st_mode)
            assert mode == stat.S_IMODE((copy / name).stat().st_mode)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    write_state(tmp_path / "state")
    return tmp_path / "state"


def test_full_send_restore_then_nothing_to_resend(
    session: SshSession, state: Path, tmp_path: Path, remote_root: Path
) -> None:
    store = ChunkStore(tmp_path / "local")
    manifest = take_snapshot("kv-1", state, store, SMALL)
    progress: list[Progress] = []
    report = send_snapshot(session, manifest, store, str(remote_root), progress.append)
    assert report.chunks_sent == report.chunks_in_manifest == len(manifest.chunk_sizes())
    assert report.content_bytes_sent == manifest.total_size
    assert progress[-1].chunks_sent == report.chunks_sent
    assert progress[-1].bytes_sent == report.bytes_sent
    summary = restore_snapshot(session, manifest, str(remote_root), "shards/kv-1/state")
    assert summary == {"files": 3, "bytes": manifest.total_size}
    assert_same_tree(state, remote_root / "shards/kv-1/state")
    assert send_snapshot(session, manifest, store, str(remote_root)).chunks_sent == 0
    assert not list((remote_root / "incoming").iterdir())


def test_one_percent_change_sends_only_changed_chunks(
    session: SshSession, state: Path, tmp_path: Path, remote_root: Path
) -> None:
    store = ChunkStore(tmp_path / "local")
    send_snapshot(session, take_snapshot("kv-1", state, store, SMALL), store, str(remote_root))
    changed = STATE_SIZE // 100
    with (state / "db" / "data.bin").open("r+b") as handle:
        handle.seek(STATE_SIZE // 2)
        handle.write(os.urandom(changed))
    manifest = take_snapshot("kv-1", state, store, SMALL)
    report = send_snapshot(session, manifest, store, str(remote_root))
    assert 0 < report.content_bytes_sent <= 1.1 * changed + SMALL.max_size
    restore_snapshot(session, manifest, str(remote_root), "shards/kv-1/state")
    assert_same_tree(state, remote_root / "shards/kv-1/state")


def test_chunk_corrupted_on_the_wire_is_refused(
    session: SshSession, state: Path, tmp_path: Path, remote_root: Path
) -> None:
    store = ChunkStore(tmp_path / "local")
    manifest = take_snapshot("kv-1", state, store, SMALL)
    bad = next(iter(manifest.chunk_sizes()))
    blob = bytearray(store.path(bad).read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # what the target receives differs from what the hash says
    store.path(bad).write_bytes(bytes(blob))
    with pytest.raises(CorruptChunk, match=f"failed verification on arrival.*{bad}"):
        send_snapshot(session, manifest, store, str(remote_root))
    remote = RemoteChunkStore(session, str(remote_root))
    assert remote.missing(manifest.chunk_sizes()) == [bad]


def test_chunk_corrupted_on_target_disk_is_refused_at_restore(
    session: SshSession, state: Path, tmp_path: Path, remote_root: Path
) -> None:
    store = ChunkStore(tmp_path / "local")
    manifest = take_snapshot("kv-1", state, store, SMALL)
    send_snapshot(session, manifest, store, str(remote_root))
    restore_snapshot(session, manifest, str(remote_root), "shards/kv-1/state")
    bad = manifest.files[0].chunks[3].digest
    stored = ChunkStore(remote_root).path(bad)
    stored.write_bytes(stored.read_bytes()[:-8] + bytes(8))
    with pytest.raises(CorruptChunk, match=f"file db/data.bin: chunk {bad}"):
        restore_snapshot(session, manifest, str(remote_root), "shards/kv-1/state")
    assert_same_tree(state, remote_root / "shards/kv-1/state")  # the previous copy is intact
    assert not (remote_root / "shards/kv-1/.state.restoring").exists()


def test_bad_target_dir_is_refused_before_connecting(
    sshd, allow_all, state: Path, tmp_path: Path
) -> None:
    closed = SshSession(endpoint_for(sshd, port=free_tcp_port()), allow_all, "ops")
    store = ChunkStore(tmp_path / "local")
    manifest = take_snapshot("kv-1", state, store, SMALL)
    with pytest.raises(ValidationError, match="path"):
        restore_snapshot(closed, manifest, "/srv/sky", "../../etc")
    with pytest.raises(ValidationError, match="remote_root"):
        send_snapshot(closed, manifest, store, "/srv/sky; reboot")
