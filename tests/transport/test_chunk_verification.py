"""Arrival verification of chunks: stored zstd blocks hashed in place, the rest decompressed."""

from __future__ import annotations

import hashlib
import random

import pytest
import zstandard

from skyshard.runtime.host_helper import CorruptData, verify_chunk

SIZES = [0, 1, 128 * 1024, 128 * 1024 + 1, 3_000_001]


def frame(data: bytes, **options: bool) -> bytes:
    return zstandard.ZstdCompressor(level=3, **options).compress(data)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("options", [{}, {"write_content_size": False}, {"write_checksum": True}])
def test_good_chunks_pass(size: int, options: dict[str, bool]) -> None:
    data = random.Random(size).randbytes(size)
    verify_chunk(hashlib.sha256(data).hexdigest(), frame(data, **options))


def test_compressible_chunk_passes_and_its_corruption_is_named() -> None:
    data = b"skyshard " * 100_000
    digest = hashlib.sha256(data).hexdigest()
    verify_chunk(digest, frame(data))
    with pytest.raises(CorruptData, match=f"chunk {digest}: not a valid zstd frame"):
        verify_chunk(digest, frame(data)[:-5])


def damaged_frames(blob: bytes) -> dict[str, bytes]:
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x01
    retyped = bytearray(blob)
    retyped[10] |= 0x04  # the first block header (after a 10-byte frame header) turns RLE
    return {
        "payload bit flipped": bytes(flipped),
        "truncated": blob[:-1],
        "block type changed": bytes(retyped),
        "not zstd": b"\0" * 64,
    }


@pytest.mark.parametrize("damage", list(damaged_frames(b"x" * 64)))
def test_damaged_incompressible_chunk_is_refused_naming_it(damage: str) -> None:
    data = random.Random(7).randbytes(4 << 20)
    digest = hashlib.sha256(data).hexdigest()
    blob = frame(data)
    assert blob[4] == 0x80  # content size field of 4 bytes plus a window descriptor
    with pytest.raises(CorruptData, match=f"chunk {digest}"):
        verify_chunk(digest, damaged_frames(blob)[damage])


def test_other_content_is_refused_naming_both_hashes() -> None:
    data = random.Random(8).randbytes(300_000)
    claimed = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(CorruptData, match=f"chunk {claimed}: content hashes to [0-9a-f]{{64}}"):
        verify_chunk(claimed, frame(data))
