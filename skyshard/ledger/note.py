"""C2SP signed-note: Ed25519 note keys, verifier key strings, signing, strict parsing and
verification (https://c2sp.org/signed-note)."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from skyshard.ledger import ed25519

SIGNATURE_TYPE_ED25519 = 0x01
EM_DASH = "\u2014"
MAX_SIGNATURES = 100
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(ValueError):
    """A note, signature line or verifier key is malformed or does not verify."""


def key_id(name: str, signature_type: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4], the recommended note key ID."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()[:4]


def check_key_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise NoteError(f"key name {name!r} must be non-empty without spaces or '+'")


def strict_b64decode(text: str, what: str) -> bytes:
    """Standard base64 that must round-trip exactly (no whitespace, no sloppy padding)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64: {text!r}") from exc
    if base64.b64encode(raw).decode() != text:
        raise NoteError(f"{what} is not canonical base64: {text!r}")
    return raw


@dataclass(frozen=True)
class VerifierKey:
    """The parts of a verifier key string `<name>+<hex key id>+<base64(type || key)>`."""

    name: str
    key_id: bytes
    signature_type: int
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"verifier key {vkey!r} is not <name>+<key id>+<base64 key>")
        name, id_hex, material_b64 = parts
        check_key_name(name)
        if not _KEY_ID_HEX.fullmatch(id_hex):
            raise NoteError(f"verifier key {vkey!r}: key id {id_hex!r} is not 8 hex digits")
        material = strict_b64decode(material_b64, f"verifier key {name!r}")
        if len(material) < 2:
            raise NoteError(f"verifier key {name!r} has no key material")
        parsed = cls(name, bytes.fromhex(id_hex), material[0], material[1:])
        if key_id(name, parsed.signature_type, parsed.public_key) != parsed.key_id:
            raise NoteError(f"verifier key {vkey!r}: key id {id_hex} does not match the key")
        return parsed

    def format(self) -> str:
        material = base64.b64encode(bytes([self.signature_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"


class NoteVerifier(Protocol):
    name: str

    @property
    def key_id(self) -> bytes: ...

    def verify(self, text: bytes, signature: bytes) -> bool: ...


class NoteSigner(Protocol):
    name: str

    @property
    def key_id(self) -> bytes: ...

    def sign(self, text: bytes) -> bytes: ...


def parse_ed25519_vkey(vkey: str, signature_type: int, label: str) -> tuple[str, bytes]:
    """(name, public key) of a verifier key string of `signature_type` over an Ed25519 key."""
    parsed = VerifierKey.parse(vkey)
    if parsed.signature_type != signature_type:
        raise NoteError(
            f"verifier key {parsed.name!r} has signature type {parsed.signature_type:#04x}, "
            f"expected {label} ({signature_type:#04x})"
        )
    if len(parsed.public_key) != ed25519.PUBLIC_KEY_SIZE:
        raise NoteError(f"verifier key {parsed.name!r} is not a 32-byte Ed25519 key")
    return parsed.name, parsed.public_key


@dataclass(frozen=True)
class Ed25519Verifier:
    """Checks plain Ed25519 note signatures (type 0x01) for one key name."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, SIGNATURE_TYPE_ED25519, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> Ed25519Verifier:
        return cls(*parse_ed25519_vkey(vkey, SIGNATURE_TYPE_ED25519, "Ed25519"))

    def vkey(self) -> str:
        return VerifierKey(self.name, self.key_id, SIGNATURE_TYPE_ED25519, self.public_key).format()

    def verify(self, text: bytes, signature: bytes) -> bool:
        return ed25519.verify(self.public_key, text, signature)


@dataclass(frozen=True)
class Ed25519Signer:
    """Makes plain Ed25519 note signatures (type 0x01) under one key name."""

    name: str
    key: ed25519.SigningKey

    def __post_init__(self) -> None:
        check_key_name(self.name)

    @functools.cached_property
    def key_id(self) -> bytes:
        return self.verifier().key_id

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.name, self.key.public_key)

    def sign(self, text: bytes) -> bytes:
        return self.key.sign(text)


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, 4-byte key ID and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode()
        return f"{EM_DASH} {self.name} {blob}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[Signature, ...] = ()

    def format(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def with_signatures(self, signers: Iterable[NoteSigner]) -> Note:
        """This note with more signatures appended (an existing one by the same key is replaced)."""
        added = [Signature(s.name, s.key_id, s.sign(self.text.encode())) for s in signers]
        replaced = {(s.name, s.key_id) for s in added}
        kept = [s for s in self.signatures if (s.name, s.key_id) not in replaced]
        return Note(self.text, (*kept, *added))


def check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if _CONTROL_CHARACTERS.search(text):
        raise NoteError("note text contains a control character other than newline")


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """A signed note: `text` (ending in newline), a blank line and one line per signer."""
    check_text(text)
    if not signers:
        raise NoteError("a note needs at least one signer")
    return Note(text).with_signatures(signers).format()


def parse_note(message: str | bytes) -> Note:
    """Split a signed note into text and signature lines, rejecting anything malformed."""
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    check_text(message)
    split = message.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = message[: split + 1], message[split + 2 :]
    lines = block.split("\n")[:-1]
    if not lines:
        raise NoteError("note has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    return Note(text, tuple(_parse_signature_line(line) for line in lines))


def _parse_signature_line(line: str) -> Signature:
    prefix = EM_DASH + " "
    if not line.startswith(prefix):
        raise NoteError(f"signature line {line!r} does not start with an em dash and a space")
    fields = line[len(prefix) :].split(" ")
    if len(fields) != 2:
        raise NoteError(f"signature line {line!r} is not '{EM_DASH} <name> <base64>'")
    name, blob = fields
    check_key_name(name)
    raw = strict_b64decode(blob, f"signature by {name!r}")
    if len(raw) < 5:
        raise NoteError(f"signature by {name!r} is too short ({len(raw)} bytes)")
    return Signature(name, raw[:4], raw[4:])


def verified_signatures(note: Note, verifiers: Iterable[NoteVerifier]) -> list[Signature]:
    """The note's signatures by known keys, all checked; unknown keys are ignored and a bad
    signature by a known key is an error."""
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(note.text.encode(), sig.signature):
            raise NoteError(f"signature by {sig.name}+{sig.key_id.hex()} does not verify")
        verified.append(sig)
    return verified


def open_note(
    message: str | bytes, verifiers: Sequence[NoteVerifier]
) -> tuple[Note, list[Signature]]:
    """Parse and verify a note that at least one known key must have signed.
    Returns the note and its verified signature lines."""
    note = parse_note(message)
    verified = verified_signatures(note, verifiers)
    if not verified:
        names = ", ".join(f"{v.name}+{v.key_id.hex()}" for v in verifiers) or "none"
        raise NoteError(f"note has no signature from a known key (known keys: {names})")
    return note, verified
