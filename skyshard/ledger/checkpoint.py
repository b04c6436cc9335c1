"""C2SP tlog-checkpoint: the note body naming a log's origin, tree size and root hash
(https://c2sp.org/tlog-checkpoint)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from skyshard.ledger.merkle import HASH_SIZE
from skyshard.ledger.note import NoteError, check_text, parse_note, strict_b64decode

_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise NoteError(f"checkpoint origin {self.origin!r} must be one non-empty line")
        if self.size < 0:
            raise NoteError(f"checkpoint tree size {self.size} is negative")
        if len(self.root_hash) != HASH_SIZE:
            raise NoteError(f"checkpoint root hash is {len(self.root_hash)} bytes, not 32")
        for line in self.extensions:
            if not line or "\n" in line:
                raise NoteError(f"checkpoint extension line {line!r} must be one non-empty line")

    def body(self) -> str:
        """The note text: origin, size, base64 root, extension lines, each ending in newline."""
        root = base64.b64encode(self.root_hash).decode()
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        check_text(text)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(f"checkpoint has {len(lines)} lines, needs origin, size and root hash")
        origin, size_text, root_text, *extensions = lines
        if not _TREE_SIZE.fullmatch(size_text):
            raise NoteError(f"checkpoint tree size {size_text!r} is not a decimal without zeros")
        root = strict_b64decode(root_text, "checkpoint root hash")
        return cls(origin, int(size_text), root, tuple(extensions))

    @classmethod
    def from_note(cls, message: str | bytes) -> Checkpoint:
        """The checkpoint in a signed note (signatures are NOT checked here)."""
        return cls.parse_body(parse_note(message).text)
