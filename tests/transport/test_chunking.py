"""Content-defined chunking and snapshots as the host helper runs them (in-process here; over
a real sshd in test_host_transfer.py)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
import zstandard

from skyshard.runtime import host_helper
from skyshard.runtime.host_helper import DEFAULT_CHUNKS, ChunkParams, chunk_spans
from skyshard.transport.manifest import Manifest
from skyshard.transport.validate import ValidationError

SMALL = ChunkParams(min_size=2048, avg_size=8192, max_size=32768)


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def chunk_list(data: bytes, params: ChunkParams = SMALL) -> list[bytes]:
    return [data[offset : offset + length] for offset, length in chunk_spans(data, params)]


def test_chunking_is_deterministic_and_covers_the_data() -> None:
    data = random_bytes(1 << 20, 1)
    spans = chunk_spans(data, SMALL)
    assert spans == chunk_spans(bytearray(data), SMALL)
    assert b"".join(chunk_list(data)) == data
    assert all(SMALL.min_size <= length <= SMALL.max_size for _, length in spans[:-1])
    assert 2 * SMALL.min_size < len(data) / len(spans) < SMALL.max_size


@pytest.mark.parametrize("params", [SMALL, DEFAULT_CHUNKS], ids=["small", "default"])
def test_inserted_bytes_change_only_the_chunks_around_them(params: ChunkParams) -> None:
    data = random_bytes(16 << 20 if params is DEFAULT_CHUNKS else 1 << 20, 2)
    middle = len(data) // 2
    edited = data[:middle] + b"inserted bytes" + data[middle:]
    before, after = chunk_list(data, params), chunk_list(edited, params)
    new = [chunk for chunk in after if chunk not in set(before)]
    assert len(before) > 40
    assert len(new) <= 2
    assert sum(map(len, new)) <= 2 * params.max_size


def test_cut_points_do_not_depend_on_the_hash_blocks() -> None:
    """A cut decided near a 1 MiB hash block boundary is the same when the data shifts."""
    data = random_bytes(3 << 20, 3)
    shifted = random_bytes(777, 4) + data
    ends = {offset + length for offset, length in chunk_spans(data, SMALL)}
    shifted_ends = {offset + length - 777 for offset, length in chunk_spans(shifted, SMALL)}
    assert len(ends & shifted_ends) >= 0.98 * len(ends)


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


def make_state(root: Path) -> host_helper.Shard:
    shard = host_helper.Shard(root, "kv-1")
    state = shard.state
    (state / "sub").mkdir(parents=True)
    (state / "data.bin").write_bytes(random_bytes(600_000, 4))
    (state / "sub" / "log.txt").write_text("hello\n" * 1000)
    (state / "empty").write_bytes(b"")
    (state / "sub" / "log.txt").chmod(0o640)
    return shard


def test_snapshot_manifest_round_trip_and_store(tmp_path: Path) -> None:
    shard = make_state(tmp_path)
    manifest = Manifest.from_json(host_helper.snapshot(shard))
    assert [entry.path for entry in manifest.files] == ["data.bin", "empty", "sub/log.txt"]
    assert manifest.files[2].mode == 0o640
    assert manifest.files[1].chunks == ()
    assert len(manifest.files[0].chunks) > 1  # content-defined, not one chunk per file
    data = b"".join(
        host_helper.verified_content(ref.digest, (tmp_path / "chunks" / ref.digest[:2] /
                                                  ref.digest).read_bytes())
        for ref in manifest.files[0].chunks
    )  # fmt: skip
    assert hashlib.sha256(data).hexdigest() == manifest.files[0].sha256
    again = Manifest.from_json(host_helper.snapshot(make_state(tmp_path / "again")))
    assert again.digest == manifest.digest


def test_manifest_refuses_tampering(tmp_path: Path) -> None:
    manifest = Manifest.from_json(host_helper.snapshot(make_state(tmp_path)))
    text = manifest.to_json()
    with pytest.raises(ValidationError, match="manifest digest"):
        Manifest.from_json(text.replace(b"data.bin", b"data.bim"), manifest.digest)
    with pytest.raises(ValidationError, match=r"files\[0\].path"):
        Manifest.from_json(text.replace(b"data.bin", b"../../x"))
    with pytest.raises(ValidationError, match="malformed"):
        Manifest.from_json(b"{}")


def test_symlinks_in_state_are_refused(tmp_path: Path) -> None:
    shard = make_state(tmp_path)
    (shard.state / "link").symlink_to("/etc/passwd")
    with pytest.raises(host_helper.HelperError, match="link is not a regular file"):
        host_helper.snapshot(shard)


def test_stored_chunk_corruption_is_named(tmp_path: Path) -> None:
    shard = make_state(tmp_path)
    manifest = Manifest.from_json(host_helper.snapshot(shard))
    digest = manifest.files[0].chunks[0].digest
    path = host_helper.chunk_path(tmp_path, digest)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(host_helper.CorruptData, match=digest):
        host_helper.verified_content(digest, path.read_bytes())


class SliceRecorder:
    """Bytes that remember how far into them anything was sliced."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.furthest = 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: slice) -> bytes:
        self.furthest = max(self.furthest, min(index.stop, len(self.data)))
        return self.data[index]


def test_spans_come_while_the_rest_is_still_unhashed() -> None:
    """The first chunk is decided after hashing at most max_size (plus one hash block) of a
    large file, so a transfer can send it while the rest is being cut."""
    data = random_bytes(16 << 20, 6)
    recorder = SliceRecorder(data)
    spans = host_helper.iter_chunk_spans(recorder, DEFAULT_CHUNKS)
    first = next(spans)
    assert first == chunk_spans(data, DEFAULT_CHUNKS)[0]
    assert recorder.furthest <= DEFAULT_CHUNKS.max_size + host_helper.HASH_BLOCK
    assert [first, *spans] == chunk_spans(data, DEFAULT_CHUNKS)


def test_incompressible_chunks_are_stored_as_raw_frames_any_zstd_reads() -> None:
    noise = random_bytes(300_000, 7)
    text = b"skyshard key=value\n" * 20_000
    raw, packed = host_helper.encode_chunk(noise), host_helper.encode_chunk(text)
    assert host_helper._raw_block_payloads(raw) is not None  # stored, no zstd pass
    assert len(raw) < len(noise) + 64 and len(packed) < len(text) // 10
    for data, blob in ((noise, raw), (text, packed)):
        assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == data
        host_helper.verify_chunk(hashlib.sha256(data).hexdigest(), blob)


def test_restore_traces_a_damaged_chunk_of_the_right_size_and_drops_it(tmp_path: Path) -> None:
    """The restore hashes each file once; a mismatch is traced to the chunk, which is dropped
    from the store (so the next transfer sends it again), and the old state stays."""
    shard = make_state(tmp_path)
    assert host_helper.status(shard)["state_bytes"] == 600_000 + 6000
    text = host_helper.snapshot(shard)
    manifest = Manifest.from_json(text)
    digest = manifest.files[0].chunks[1].digest
    path = host_helper.chunk_path(tmp_path, digest)
    damaged = bytearray(path.read_bytes())
    damaged[-7] ^= 0x01
    path.write_bytes(bytes(damaged))
    (shard.state / "data.bin").write_bytes(b"the state before the restore")
    with pytest.raises(host_helper.CorruptData, match=f"file data.bin: chunk {digest}"):
        host_helper.restore(shard, text, manifest.digest, full_verify=False)
    assert not path.exists()
    assert (shard.state / "data.bin").read_bytes() == b"the state before the restore"
    assert not (shard.dir / ".state.next").exists()


def test_a_store_failure_in_the_worker_ends_the_snapshot(tmp_path: Path) -> None:
    """Chunks are hashed and stored in a worker thread: its first error ends the snapshot
    (no hang with more chunks than may wait), and nothing is cached."""
    shard = host_helper.Shard(tmp_path, "kv-1")
    shard.state.mkdir(parents=True)
    (shard.state / "data.bin").write_bytes(random_bytes(8 << 20, 8))  # ~32 chunks
    (tmp_path / "chunks").write_text("not a directory")
    with pytest.raises(OSError):
        host_helper.snapshot(shard)
    assert not (shard.dir / "snapshot-cache.json").exists()
