"""Snapshot manifests: every file of a shard's state directory as an ordered list of chunks.

The manifest is canonical JSON (sorted keys, no spaces, ASCII), so its SHA-256 (`digest`)
identifies a snapshot; restoring verifies the digest, every chunk and every file's hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from skyshard.transport import validate
from skyshard.transport.validate import ValidationError

VERSION = 1


@dataclass(frozen=True)
class ChunkRef:
    digest: str
    size: int


@dataclass(frozen=True)
class FileEntry:
    path: str
    mode: int
    size: int
    sha256: str
    chunks: tuple[ChunkRef, ...]
    # Sent whole (first-copy fast path): no chunks; the target holds it by `sha256`.
    whole: bool = False


@dataclass(frozen=True)
class Manifest:
    shard_id: str
    files: tuple[FileEntry, ...]

    def to_json(self) -> bytes:
        document = {
            "version": VERSION,
            "shard_id": self.shard_id,
            "files": [
                {
                    "path": entry.path,
                    "mode": entry.mode,
                    "size": entry.size,
                    "sha256": entry.sha256,
                    "chunks": [[ref.digest, ref.size] for ref in entry.chunks],
                    **({"whole": True} if entry.whole else {}),
                }
                for entry in self.files
            ],
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()

    @property
    def total_size(self) -> int:
        return sum(entry.size for entry in self.files)

    def chunk_sizes(self) -> dict[str, int]:
        """Every distinct chunk and its size, in first-use order."""
        sizes: dict[str, int] = {}
        for entry in self.files:
            for ref in entry.chunks:
                sizes.setdefault(ref.digest, ref.size)
        return sizes

    @classmethod
    def from_json(cls, data: bytes, expected_digest: str | None = None) -> Manifest:
        """Parse and validate a manifest; with `expected_digest`, also check its hash."""
        if expected_digest is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected_digest:
                raise ValidationError("manifest digest", actual, f"expected {expected_digest}")
        try:
            document = json.loads(data)
            if document["version"] != VERSION:
                raise ValidationError("manifest.version", document["version"], f"not {VERSION}")
            files = tuple(_entry(raw, f"files[{i}]") for i, raw in enumerate(document["files"]))
            return cls(validate.shard_id(document["shard_id"], "manifest.shard_id"), files)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, ValidationError):
                raise
            raise ValidationError("manifest", data[:80], f"malformed: {error!r}") from None


def _entry(raw: dict, field: str) -> FileEntry:
    chunks = tuple(
        ChunkRef(validate.chunk_hash(digest, f"{field}.chunks[{i}]"), _count(size, field))
        for i, (digest, size) in enumerate(raw["chunks"])
    )
    entry = FileEntry(
        path=validate.relative_path(raw["path"], f"{field}.path"),
        mode=_count(raw["mode"], f"{field}.mode") & 0o7777,
        size=_count(raw["size"], f"{field}.size"),
        sha256=validate.chunk_hash(raw["sha256"], f"{field}.sha256"),
        chunks=chunks,
        whole=raw.get("whole", False),
    )
    if entry.whole is not True and entry.whole is not False:
        raise ValidationError(f"{field}.whole", entry.whole, "must be true or false")
    if entry.whole and chunks:
        raise ValidationError(f"{field}.chunks", len(chunks), "must be empty for a whole file")
    if not entry.whole and sum(ref.size for ref in chunks) != entry.size:
        raise ValidationError(f"{field}.size", entry.size, "differs from the sum of its chunks")
    return entry


def _count(value: object, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValidationError(field, value, "must be a non-negative integer")
    return value
