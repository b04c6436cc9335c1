"""Content-defined chunking: FastCDC-style cut points from a gear hash computed with numpy.

The gear hash of FastCDC is `h = (h << 1) + GEAR[byte]` on a machine word. With 32-bit words
and a window of W bytes it equals `sum(GEAR[b[i-k]] << k for k < W)`, which numpy computes
for every position at once in log2(W) shift-and-add passes (window doubling) instead of a
Python loop per byte. Cut points therefore depend only on the last W bytes, so an insertion
shifts boundaries only until the next cut point (boundary stability). Normalized chunking
(FastCDC "NC1") uses a strict mask before the average size and a loose one after it.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WINDOW = 16  # bytes of context per cut decision; must be a power of two
HASH_BLOCK = 1 << 18  # bytes hashed per numpy pass: small enough to stay in cache

# A fixed table: chunk boundaries (and so chunk hashes) must be identical on every host.
GEAR = np.random.default_rng(0x5C5A_ADED).integers(0, 2**32, size=256, dtype=np.uint32)


@dataclass(frozen=True)
class ChunkParams:
    """Minimum, average (a power of two) and maximum chunk size in bytes."""

    min_size: int = 256 * 1024
    avg_size: int = 1024 * 1024
    max_size: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.avg_size & (self.avg_size - 1):
            raise ValueError(f"avg_size must be a power of two, got {self.avg_size}")
        if not WINDOW < self.min_size < self.avg_size < self.max_size:
            raise ValueError(
                f"need {WINDOW} < min_size < avg_size < max_size, got "
                f"{self.min_size}/{self.avg_size}/{self.max_size}"
            )

    def masks(self) -> tuple[np.uint32, np.uint32]:
        """(strict, loose) masks over the hash's top bits; strict candidates ⊂ loose ones."""
        bits = self.avg_size.bit_length() - 1
        return _top_bits(bits + 1), _top_bits(bits - 1)


def _top_bits(count: int) -> np.uint32:
    return np.uint32(((1 << count) - 1) << (32 - count))


def gear_hashes(data: np.ndarray) -> np.ndarray:
    """The windowed gear hash ending at every position of `data` (uint8 array)."""
    hashes = np.take(GEAR, data)
    shifted = np.empty_like(hashes)
    step = 1
    while step < WINDOW:
        np.left_shift(hashes[:-step], step, out=shifted[:-step])
        np.add(hashes[step:], shifted[:-step], out=hashes[step:])
        step *= 2
    return hashes


def _candidate_ends(data: np.ndarray, params: ChunkParams) -> tuple[np.ndarray, np.ndarray]:
    """Sorted chunk end offsets where the strict and the loose mask match."""
    strict_mask, loose_mask = params.masks()
    strict: list[np.ndarray] = []
    loose: list[np.ndarray] = []
    for start in range(0, len(data), HASH_BLOCK):
        lead = min(start, WINDOW - 1)  # include the window's context from the previous block
        hashes = gear_hashes(data[start - lead : start + HASH_BLOCK])[lead:]
        loose_hits = np.flatnonzero((hashes & loose_mask) == 0)
        strict_hits = loose_hits[(hashes[loose_hits] & strict_mask) == 0]
        loose.append(loose_hits + start + 1)
        strict.append(strict_hits + start + 1)
    empty = np.empty(0, dtype=np.int64)
    return (np.concatenate(strict) if strict else empty, np.concatenate(loose) if loose else empty)


def _first_in(candidates: np.ndarray, low: int, high: int) -> int | None:
    index = int(np.searchsorted(candidates, low))
    if index < len(candidates) and candidates[index] < high:
        return int(candidates[index])
    return None


def chunk_spans(
    data: bytes | memoryview | np.ndarray, params: ChunkParams
) -> list[tuple[int, int]]:
    """(offset, length) of every chunk of `data`, in order; empty data has no chunks."""
    array = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    size = len(array)
    strict, loose = _candidate_ends(array, params)
    spans: list[tuple[int, int]] = []
    start = 0
    while start < size:
        if size - start <= params.min_size:
            end = size
        else:
            normal = min(start + params.avg_size, size)
            limit = min(start + params.max_size, size)
            end = (
                _first_in(strict, start + params.min_size, normal)
                or _first_in(loose, normal, limit)
                or limit
            )
        spans.append((start, end - start))
        start = end
    return spans


def file_chunks(path: Path, params: ChunkParams) -> Iterator[bytes]:
    """The content-defined chunks of a file, cut through a memory map (never read whole)."""
    if path.stat().st_size == 0:
        return
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for offset, length in chunk_spans(mm, params):
            yield mm[offset : offset + length]
