"""The chunk store's on-disk rules, runnable on a remote host as a self-contained helper script.

skyshard copies this one file to `<root>/bin/` on a host (verified by SHA-256) and runs it with
`python3`; it needs only the standard library plus either the `zstandard` module or the
`zstd` command. Locally, `chunkstore.py` imports it so both sides share one implementation.

Layout: `<root>/chunks/<first two hex digits>/<sha256>` holds a zstd frame whose decompressed
content hashes to the file name. Operations (argv[1]):
  missing <root>                        stdin: hashes, one a line; stdout: those absent
  ingest <root> <incoming dir>          verify uploaded chunks, move good ones into the store
  restore <root> <target dir> <digest>  stdin: manifest JSON; rebuild and verify a state dir
Exit status 3 means corrupted data (named on stderr); 2 means bad usage or input.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HASH = re.compile(r"[0-9a-f]{64}")
EXIT_USAGE = 2
EXIT_CORRUPT = 3
ZSTD_MAGIC = bytes.fromhex("28b52ffd")
ZSTD_MAX_BLOCK = 128 * 1024  # the format's Block_Maximum_Size


class CorruptData(Exception):
    """A chunk, file or manifest whose content does not match its hash."""


def chunk_path(root: Path, digest: str) -> Path:
    return root / "chunks" / digest[:2] / digest


def decompress(blob: bytes) -> bytes:
    try:
        import zstandard
    except ImportError:
        return subprocess.run(["zstd", "-dcq"], input=blob, capture_output=True, check=True).stdout
    return zstandard.ZstdDecompressor().decompress(blob)


def verified_content(digest: str, blob: bytes) -> bytes:
    """The decompressed content of a stored chunk, or CorruptData if it is not `digest`."""
    try:
        data = decompress(blob)
    except Exception as error:
        raise CorruptData(f"chunk {digest}: not a valid zstd frame ({error})") from error
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise CorruptData(f"chunk {digest}: content hashes to {actual}")
    return data


def _raw_block_payloads(blob: bytes) -> list[memoryview] | None:
    """The block payloads of `blob` if it is exactly one zstd frame of raw (stored) blocks.

    zstd stores incompressible data as raw blocks; hashing them in place skips the copy
    decompression makes. Anything unusual (dictionary, checksum, other block types, trailing
    bytes, sizes the format forbids) returns None and goes through the real decompressor.
    """
    view = memoryview(blob)
    if len(view) < 6 or bytes(view[:4]) != ZSTD_MAGIC:
        return None
    descriptor = view[4]
    if descriptor & 0x0F:  # reserved bit, content checksum or dictionary id present
        return None
    single_segment = bool(descriptor & 0x20)
    size_field = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
    position = 5
    window = None
    if not single_segment:
        exponent, mantissa = view[5] >> 3, view[5] & 7
        base = 1 << (10 + exponent)
        window = base + base // 8 * mantissa
        position = 6
    content_size = int.from_bytes(view[position : position + size_field], "little")
    if size_field == 2:
        content_size += 256
    position += size_field
    limit = min(ZSTD_MAX_BLOCK, window if window is not None else content_size)
    payloads: list[memoryview] = []
    total = 0
    last = False
    while not last:
        if position + 3 > len(view):
            return None
        header = int.from_bytes(view[position : position + 3], "little")
        last, kind, size = bool(header & 1), (header >> 1) & 3, header >> 3
        position += 3
        if kind != 0 or size > limit or position + size > len(view):
            return None
        payloads.append(view[position : position + size])
        position += size
        total += size
    if position != len(view) or (size_field and total != content_size):
        return None
    return payloads


def verify_chunk(digest: str, blob: bytes) -> None:
    """Raise CorruptData unless `blob` is a zstd frame whose content hashes to `digest`."""
    payloads = _raw_block_payloads(blob)
    if payloads is None:
        verified_content(digest, blob)
        return
    content_hash = hashlib.sha256()
    for payload in payloads:
        content_hash.update(payload)
    actual = content_hash.hexdigest()
    if actual != digest:
        raise CorruptData(f"chunk {digest}: content hashes to {actual}")


def read_chunk(root: Path, digest: str) -> bytes:
    path = chunk_path(root, digest)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise CorruptData(f"chunk {digest}: missing from the store at {path}") from None
    return verified_content(digest, blob)


def missing(root: Path, digests: list[str]) -> list[str]:
    return [digest for digest in digests if not chunk_path(root, digest).exists()]


def ingest(root: Path, incoming: Path) -> tuple[int, list[str]]:
    """Move every verified chunk from `incoming` into the store; delete and report bad ones."""
    accepted = 0
    rejected: list[str] = []
    for upload in sorted(incoming.iterdir()):
        digest = upload.name
        try:
            if not HASH.fullmatch(digest):
                raise CorruptData(f"upload {digest!r} is not named by a SHA-256")
            verify_chunk(digest, upload.read_bytes())
        except CorruptData:
            rejected.append(digest)
            upload.unlink()
            continue
        target = chunk_path(root, digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(upload, target)
        accepted += 1
    incoming.rmdir()
    return accepted, rejected


def _safe_relative(text: str) -> Path:
    parts = text.split("/")
    if text.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"unsafe path in manifest: {text!r}")
    return Path(*parts)


def restore(root: Path, target: Path, manifest: bytes, digest: str) -> dict[str, int]:
    """Rebuild `target` from the manifest into a staging dir, verify everything, then swap."""
    actual = hashlib.sha256(manifest).hexdigest()
    if actual != digest:
        raise CorruptData(f"manifest hashes to {actual}, expected {digest}")
    files = json.loads(manifest)["files"]
    staging = target.with_name(f".{target.name}.restoring")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    written = 0
    try:
        for entry in files:
            relative = _safe_relative(entry["path"])
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            file_hash = hashlib.sha256()
            with destination.open("wb") as out:
                for chunk_digest, size in entry["chunks"]:
                    try:
                        data = read_chunk(root, chunk_digest)
                    except CorruptData as error:
                        raise CorruptData(f"file {entry['path']}: {error}") from None
                    if len(data) != size:
                        raise CorruptData(f"file {entry['path']}: chunk {chunk_digest} size")
                    out.write(data)
                    file_hash.update(data)
            if file_hash.hexdigest() != entry["sha256"]:
                raise CorruptData(f"file {entry['path']}: content does not match its hash")
            os.chmod(destination, entry["mode"])
            written += entry["size"]
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = target.with_name(f".{target.name}.previous")
    if target.exists():
        if previous.exists():
            shutil.rmtree(previous)
        os.replace(target, previous)
    os.replace(staging, target)
    shutil.rmtree(previous, ignore_errors=True)
    return {"files": len(files), "bytes": written}


def main(argv: list[str]) -> int:
    try:
        operation, root = argv[1], Path(argv[2])
        if operation == "missing":
            wanted = [line.strip() for line in sys.stdin if line.strip()]
            bad = [digest for digest in wanted if not HASH.fullmatch(digest)]
            if bad:
                raise ValueError(f"not chunk hashes: {bad[:3]}")
            sys.stdout.write("".join(f"{digest}\n" for digest in missing(root, wanted)))
        elif operation == "ingest":
            accepted, rejected = ingest(root, root / _safe_relative(argv[3]))
            print(json.dumps({"accepted": accepted, "rejected": rejected}))
            if rejected:
                raise CorruptData(f"chunks failed verification on arrival: {rejected}")
        elif operation == "restore":
            manifest = sys.stdin.buffer.read()
            print(json.dumps(restore(root, root / _safe_relative(argv[3]), manifest, argv[4])))
        else:
            raise ValueError(f"unknown operation {operation!r}")
    except CorruptData as error:
        print(f"skyshard-helper: corrupt: {error}", file=sys.stderr)
        return EXIT_CORRUPT
    except (IndexError, ValueError, OSError) as error:
        print(f"skyshard-helper: error: {error!r}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
