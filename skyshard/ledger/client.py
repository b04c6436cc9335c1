"""What a client remembers of a log, kept outside the log's folder (like the cache of Go's
sumdb client): the pinned genesis key, the latest checkpoint it verified (with the byte offset
and Merkle frontier that let the next process verify only what is new), and the last entry it
saw appended. A log rolled back, forked or re-keyed behind the client's back contradicts one
of them.

Layout of a client folder:
  genesis.vkey      the log's first key; every later key must be announced by key_rotation
  checkpoint.json   latest verified checkpoint note, its byte offset and frontier (fsynced)
  seen.json         size, byte offset and leaf hash of the last entry this client appended
  cosigned.note     the latest checkpoint it saw cosigned, with those cosignatures (a note
                    that loses one of them in the log's folder was stripped)
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.log import LedgerError, write_atomically
from skyshard.ledger.merkle import HASH_SIZE, Frontier, ProofError
from skyshard.ledger.note import Ed25519Verifier, NoteError, strict_b64decode

GENESIS_FILE = "genesis.vkey"
CHECKPOINT_FILE = "checkpoint.json"
SEEN_FILE = "seen.json"
COSIGNED_FILE = "cosigned.note"
_SEEN_WIDTH = 160
"""Fixed width (JSON padded with spaces), so an in-place rewrite never leaves old bytes."""


@dataclass(frozen=True)
class Mark:
    """A position in a log: `size` entries end at byte `offset`, the last with `last_leaf`."""

    size: int
    offset: int
    last_leaf: bytes

    def as_json(self) -> dict[str, Any]:
        leaf = base64.b64encode(self.last_leaf).decode()
        return {"size": self.size, "offset": self.offset, "last_leaf": leaf}

    @classmethod
    def from_json(cls, value: Any, source: Path) -> Mark:
        try:
            size, offset = value["size"], value["offset"]
            leaf = strict_b64decode(value["last_leaf"], "last_leaf")
        except (KeyError, TypeError, NoteError) as exc:
            raise LedgerError(f"{source}: not a log position ({exc})") from None
        if not all(isinstance(v, int) and v >= 0 for v in (size, offset)):
            raise LedgerError(f"{source}: size {size!r} and offset {offset!r} must be integers")
        if len(leaf) != (HASH_SIZE if size else 0):
            raise LedgerError(f"{source}: last_leaf is {len(leaf)} bytes for size {size}")
        return cls(size, offset, leaf)


EMPTY = Mark(0, 0, b"")


@dataclass(frozen=True)
class CachedCheckpoint:
    note: str
    checkpoint: Checkpoint
    mark: Mark
    frontier: Frontier


class ClientStore:
    """One client's memory of one log."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def genesis(self) -> Ed25519Verifier | None:
        path = self.directory / GENESIS_FILE
        if not path.exists():
            return None
        try:
            return Ed25519Verifier.from_vkey(path.read_text().strip())
        except NoteError as exc:
            raise LedgerError(f"{path}: {exc}") from None

    def pin_genesis(self, key: Ed25519Verifier) -> None:
        pinned = self.genesis()
        if pinned is not None and pinned != key:
            raise LedgerError(
                f"{self.directory / GENESIS_FILE}: the log's genesis key is pinned to "
                f"{pinned.vkey()}, not {key.vkey()}"
            )
        if pinned is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(self.directory / GENESIS_FILE, key.vkey().encode() + b"\n")

    def checkpoint(self) -> CachedCheckpoint | None:
        path = self.directory / CHECKPOINT_FILE
        value = _read_json(path)
        if value is None:
            return None
        try:
            note = value["note"]
            checkpoint = Checkpoint.from_note(note)
            hashes = [strict_b64decode(h, "frontier hash") for h in value["frontier"]]
            frontier = Frontier(checkpoint.size, hashes)
        except (KeyError, TypeError, NoteError, ProofError) as exc:
            raise LedgerError(f"{path}: not a cached checkpoint ({exc})") from None
        mark = Mark.from_json(value["mark"], path)
        if mark.size != checkpoint.size or frontier.root() != checkpoint.root_hash:
            raise LedgerError(f"{path}: frontier and mark do not match checkpoint {mark.size}")
        return CachedCheckpoint(note, checkpoint, mark, frontier)

    def store_checkpoint(self, note: str, mark: Mark, frontier: Frontier) -> None:
        """Remember a verified checkpoint, unless one at least as large is remembered."""
        cached = self.checkpoint()
        if cached is not None and cached.checkpoint.size >= mark.size:
            return
        value = {
            "note": note,
            "mark": mark.as_json(),
            "frontier": [base64.b64encode(h).decode() for h in frontier.hashes],
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self.directory / CHECKPOINT_FILE, _dump(value))

    def cosigned(self) -> tuple[str, Checkpoint] | None:
        """The latest checkpoint note this client saw cosigned, with its cosignature lines."""
        path = self.directory / COSIGNED_FILE
        if not path.exists():
            return None
        note = path.read_text()
        try:
            return note, Checkpoint.from_note(note)
        except NoteError as exc:
            raise LedgerError(f"{path}: not a checkpoint note ({exc})") from None

    def store_cosigned(self, note: str) -> None:
        """Remember a (verified) cosigned checkpoint note, unless a larger one is remembered."""
        remembered = self.cosigned()
        if remembered is not None and remembered[1].size > Checkpoint.from_note(note).size:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self.directory / COSIGNED_FILE, note.encode())

    def seen(self) -> Mark | None:
        """None when missing, or unreadable: it is rewritten in place without fsync, so a crash
        may leave it torn, and a torn one vouches for nothing."""
        path = self.directory / SEEN_FILE
        try:
            value = _read_json(path)
            return None if value is None else Mark.from_json(value, path)
        except LedgerError:
            return None

    def store_seen(self, mark: Mark) -> None:
        """After every append; overwritten in place and not fsynced (the appended entries
        are): a crash can only make it older or torn, which weakens but never falsifies it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        data = _dump(mark.as_json()).ljust(_SEEN_WIDTH)
        fd = os.open(self.directory / SEEN_FILE, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _read_json(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_bytes())
    except ValueError as exc:
        raise LedgerError(f"{path}: not valid JSON ({exc})") from None
