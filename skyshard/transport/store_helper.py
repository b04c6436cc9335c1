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
            verified_content(digest, upload.read_bytes())
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
