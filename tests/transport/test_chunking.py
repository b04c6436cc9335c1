from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from skyshard.transport.chunking import ChunkParams, chunk_spans, file_chunks

from skyshard.transport.chunkstore import ChunkStore, CorruptChunk
from skyshard.transport.manifest import Manifest, build_manifest
from skyshard.transport.validate import ValidationError

SMALL = ChunkParams(min_size=2048, avg_size=8192, max_size=32768)


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def chunk_set(data: bytes) -> list[bytes]:
    return [data[offset : offset + length] for offset, length in chunk_spans(data, SMALL)]


def test_chunking_is_deterministic_and_covers_the_data() -> None:
    data = random_bytes(1 << 20, 1)
    spans = chunk_spans(data, SMALL)
    assert spans == chunk_spans(bytes(data), SMALL)
    assert b"".join(chunk_set(data)) == data
    assert all(SMALL.min_size <= length <= SMALL.max_size for _, length in spans[:-1])
    assert 2 * SMALL.min_size < len(data) / len(spans) < SMALL.max_size


def test_insert_near_start_changes_only_a_few_chunks() -> None:
    data = random_bytes(1 << 20, 2)
    edited = data[:1000] + b"inserted bytes" + data[1000:]
    before, after = chunk_set(data), set(chunk_set(edited))
    changed = [chunk for chunk in before if chunk not in after]
    assert len(before) > 50
    assert len(changed) <= 2


def test_edge_sizes() -> None:
    assert chunk_spans(b"", SMALL) == []
    assert chunk_spans(b"x", SMALL) == [(0, 1)]
    zeros = bytes(100_000)  # no cut point ever matches: max-size chunks
    assert {length for _, length in chunk_spans(zeros, SMALL)[:-1]} == {SMALL.max_size}


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="power of two"):
        ChunkParams(1000, 3000, 9000)
    with pytest.raises(ValueError, match="min_size < avg_size"):
        ChunkParams(8192, 4096, 16384)


def test_file_chunks_match_in_memory_chunks(tmp_path: Path) -> None:
    data = random_bytes(300_000, 3)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert list(file_chunks(path, SMALL)) == chunk_set(data)


def make_state(root: Path) -> Path:
    state = root / "state"
    (state / "sub").mkdir(parents=True)
    (state / "data.bin").write_bytes(random_bytes(200_000, 4))
    (state / "sub" / "log.txt").write_text("hello\n" * 1000)
    (state / "empty").write_bytes(b"")
    (state / "sub" / "log.txt").chmod(0o640)
    return state


def test_manifest_round_trip_and_store(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "store")
    manifest = build_manifest("kv-1", make_state(tmp_path), store.put_verified, SMALL)
    assert [entry.path for entry in manifest.files] == ["data.bin", "empty", "sub/log.txt"]
    assert manifest.files[2].mode == 0o640
    assert manifest.files[1].chunks == ()
    assert Manifest.from_json(manifest.to_json(), manifest.digest) == manifest
    data = b"".join(store.get(ref.digest) for ref in manifest.files[0].chunks)
    assert hashlib.sha256(data).hexdigest() == manifest.files[0].sha256
    again = build_manifest("kv-1", make_state(tmp_path / "again"), store.put_verified, SMALL)
    assert again.digest == manifest.digest


def test_manifest_refuses_tampering(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "store")
    manifest = build_manifest("kv-1", make_state(tmp_path), store.put_verified, SMALL)
    text = manifest.to_json()
    with pytest.raises(ValidationError, match="manifest digest"):
        Manifest.from_json(text.replace(b"data.bin", b"data.bim"), manifest.digest)
    with pytest.raises(ValidationError, match=r"files\[0\].path"):
        Manifest.from_json(text.replace(b"data.bin", b"../../x"))
    with pytest.raises(ValidationError, match="malformed"):
        Manifest.from_json(b"{}")


def test_symlinks_in_state_are_refused(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    (state / "link").symlink_to("/etc/passwd")
    with pytest.raises(ValidationError, match="link"):
        build_manifest("kv-1", state, ChunkStore(tmp_path / "s").put_verified, SMALL)


def test_local_store_detects_corruption(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "store")
    digest = store.put(b"payload" * 1000)
    path = store.path(digest)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CorruptChunk, match=digest):
        store.get(digest)
