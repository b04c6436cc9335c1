"""The append-only ledger file: locked, fsynced appends with group commit, torn-tail repair,
and signed checkpoints that never contradict an earlier one.

Layout of a ledger folder:
  log.jsonl           one canonical JSON entry per line; leaf i is line i without its newline
  log.lock            flock target serialising writers across processes
  genesis.vkey        copy of the first log key for auditors (the anchor is pinned outside)
  active.vkey         copy of the key now signing (changes with key_rotation; never trusted)
  repairs.jsonl       torn tails a writer removed, with their bytes, so nothing is lost
  checkpoints/<size>.note   signed checkpoints (plus cosignature lines)
  checkpoints/index.jsonl   when each checkpoint was signed
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from skyshard.ledger.entry import (
    Entry,
    EntryError,
    parse_line,
    utc_timestamp,
)
from skyshard.ledger.merkle import MerkleTree, leaf_hash
from skyshard.ledger.note import Ed25519Verifier, Note, parse_note

LOG_FILE = "log.jsonl"
LOCK_FILE = "log.lock"
GENESIS_KEY_FILE = "genesis.vkey"
ACTIVE_KEY_FILE = "active.vkey"
REPAIRS_FILE = "repairs.jsonl"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_INDEX = "index.jsonl"
_BLOCK = 1 << 16


class LedgerError(RuntimeError):
    """The ledger refuses an operation that would break its guarantees."""


class Record(NamedTuple):
    """What a caller appends; seq, timestamp, key id and signature are added under the lock."""

    type: str
    run_id: str
    actor: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class TornTail:
    """Bytes at the end of the log that are not a complete, valid entry line."""

    offset: int
    data: bytes
    reason: str


class Tail(NamedTuple):
    next_seq: int
    torn: TornTail | None


def _last_newline_before(fd: int, end: int) -> int:
    """Offset of the last newline strictly before `end`, or -1."""
    position = end
    while position > 0:
        start = max(0, position - _BLOCK)
        found = os.pread(fd, position - start, start).rfind(b"\n")
        if found >= 0:
            return start + found
        position = start
    return -1


def _read_range(fd: int, start: int, end: int) -> bytes:
    return os.pread(fd, end - start, start)


def _trailing_fragment(fd: int) -> TornTail | None:
    end = os.fstat(fd).st_size
    start = _last_newline_before(fd, end) + 1
    if start == end:
        return None
    return TornTail(start, _read_range(fd, start, end), "last line has no trailing newline")


def read_torn_tail(path: Path) -> TornTail | None:
    """The bytes after the log's last newline, if any (what a crash mid-append leaves)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return _trailing_fragment(fd)
    finally:
        os.close(fd)


def last_line(fd: int, end: int) -> tuple[int, bytes] | None:
    """(offset, line without newline) of the complete line ending at `end`, if any."""
    if end == 0:
        return None
    start = _last_newline_before(fd, end - 1) + 1
    return start, _read_range(fd, start, end - 1)


def inspect_tail(fd: int) -> Tail:
    """Find where the valid log ends: a fragment without newline, or a last line that is not
    a valid entry, is a torn tail (never accepted as an entry)."""
    size = os.fstat(fd).st_size
    torn = _trailing_fragment(fd)
    last = last_line(fd, torn.offset if torn else size)
    if last is None:
        return Tail(0, torn)
    start, line = last
    try:
        return Tail(parse_line(line).seq + 1, torn)
    except EntryError as exc:
        reason = f"last line is not a valid entry: {exc}"
    previous = last_line(fd, start)
    try:
        next_seq = parse_line(previous[1]).seq + 1 if previous else 0
    except EntryError as exc:
        raise LedgerError(
            f"the last two lines of the log are not valid entries ({exc}); "
            "run `skyshard ledger verify` before appending"
        ) from exc
    return Tail(next_seq, TornTail(start, _read_range(fd, start, size), reason))


def iter_lines(path: Path, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for every newline-terminated line from `start`; a fragment after the
    last newline is not yielded."""
    with path.open("rb") as file:
        file.seek(start)
        offset = start
        for raw in file:
            if not raw.endswith(b"\n"):
                return
            yield offset, raw[:-1]
            offset += len(raw)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old or the new content, never a mix."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def _append_line(path: Path, value: dict[str, Any]) -> None:
    with path.open("ab") as file:
        file.write(json.dumps(value, sort_keys=True).encode() + b"\n")
        file.flush()
        os.fsync(file.fileno())


def checkpoint_paths(directory: Path) -> list[Path]:
    folder = directory / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    notes = [p for p in folder.glob("*.note") if p.stem.isdigit()]
    return sorted(notes, key=lambda p: int(p.stem))


def read_entries(directory: Path, type: str | None = None) -> Iterator[Entry]:
    """Entries of a ledger folder in order (optionally one type); needs no key."""
    path = Path(directory) / LOG_FILE
    if not path.exists():
        return
    for _, line in iter_lines(path):
        entry = parse_line(line)
        if type is None or entry.type == type:
            yield entry


def read_checkpoint_index(directory: Path) -> dict[int, str]:
    """signed_at timestamp of each checkpoint size."""
    path = directory / CHECKPOINT_DIR / CHECKPOINT_INDEX
    if not path.exists():
        return {}
    index = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        index[record["size"]] = record["signed_at"]
    return index


def latest_checkpoint_note(directory: Path) -> str | None:
    paths = checkpoint_paths(directory)
    return paths[-1].read_text() if paths else None


def read_vkey(path: Path) -> Ed25519Verifier | None:
    return Ed25519Verifier.from_vkey(path.read_text()) if path.exists() else None


class AppendOnlyLog:
    """One process's handle on a ledger folder's files; callers hold `locked()` around writes.
    It signs nothing: `Ledger` verifies before it signs."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOG_FILE
        self.tree = MerkleTree()
        self._tree_end = 0

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def write(self, entries: Sequence[Entry]) -> None:
        """Durably append entries built for the current end of the log (one write, one fsync)."""
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            data = b"".join(e.line + b"\n" for e in entries)
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.directory)

    def write_keys(self, genesis: Ed25519Verifier | None, active: Ed25519Verifier) -> None:
        """The folder's copies of the genesis and active keys, for auditors (never trusted)."""
        if genesis is not None:
            write_atomically(self.directory / GENESIS_KEY_FILE, genesis.vkey().encode() + b"\n")
        write_atomically(self.directory / ACTIVE_KEY_FILE, active.vkey().encode() + b"\n")

    def repair_tail(self, protected: int) -> None:
        """Cut a torn tail (what a crash mid-append leaves), keeping its bytes in repairs.jsonl,
        unless it reaches into the first `protected` entries: those were verified, appended
        or signed before, so damage there is tampering, not a crash."""
        if not self.path.exists():
            return
        fd = os.open(self.path, os.O_RDWR)
        try:
            tail = inspect_tail(fd)
            if tail.torn is None:
                return
            if tail.next_seq < protected:
                raise LedgerError(
                    f"{self.path}: entry {tail.next_seq} was verified, appended or signed "
                    f"before but is damaged ({tail.torn.reason}); refusing to cut it, "
                    "run `skyshard ledger verify`"
                )
            _append_line(
                self.directory / REPAIRS_FILE,
                {
                    "at": utc_timestamp(),
                    "offset": tail.torn.offset,
                    "length": len(tail.torn.data),
                    "reason": tail.torn.reason,
                    "bytes_b64": base64.b64encode(tail.torn.data).decode(),
                },
            )
            os.ftruncate(fd, tail.torn.offset)
            os.fsync(fd)
        finally:
            os.close(fd)

    def refresh_tree(self) -> MerkleTree:
        """Bring the in-memory tree up to the last valid line of the file."""
        if not self.path.exists():
            return self.tree
        pending: tuple[int, bytes] | None = None
        for offset, line in iter_lines(self.path, self._tree_end):
            if pending is not None:
                self._add_leaf(*pending)
            pending = (offset, line)
        # Only the last line can be a torn tail awaiting repair, so only it is parsed here.
        if pending is not None:
            try:
                parse_line(pending[1])
            except EntryError:
                return self.tree
            self._add_leaf(*pending)
        return self.tree

    def _add_leaf(self, offset: int, line: bytes) -> None:
        self.tree.append_leaf_hash(leaf_hash(line))
        self._tree_end = offset + len(line) + 1

    def store_checkpoint(self, size: int, note: str) -> None:
        folder = self.directory / CHECKPOINT_DIR
        folder.mkdir(exist_ok=True)
        write_atomically(folder / f"{size}.note", note.encode())
        _append_line(folder / CHECKPOINT_INDEX, {"signed_at": utc_timestamp(), "size": size})

    def store_cosignatures(self, size: int, signature_lines: Iterable[str]) -> str:
        """Add cosignature lines to the stored checkpoint of `size`."""
        with self.locked():
            path = self.directory / CHECKPOINT_DIR / f"{size}.note"
            if not path.exists():
                raise LedgerError(f"{path}: no checkpoint of size {size} to add cosignatures to")
            note = parse_note(path.read_text())
            merged = parse_note(note.text + "\n" + "".join(signature_lines))
            replaced = {(s.name, s.key_id) for s in merged.signatures}
            kept = [s for s in note.signatures if (s.name, s.key_id) not in replaced]
            text = Note(note.text, (*kept, *merged.signatures)).format()
            write_atomically(path, text.encode())
            return text
