"""C2SP tlog-cosignature/v1 (Ed25519, signature type 0x04): a cosigner's timestamped
statement that it saw a checkpoint consistent with everything it saw before
(https://c2sp.org/tlog-cosignature)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from skyshard.ledger import ed25519
from skyshard.ledger.note import (
    NoteError,
    Signature,
    VerifierKey,
    check_key_name,
    key_id,
    parse_ed25519_vkey,
    parse_note,
    verified_signatures,
)

SIGNATURE_TYPE_COSIGNATURE_V1 = 0x04
_TIMESTAMP = struct.Struct(">Q")
_SIGNATURE_LENGTH = _TIMESTAMP.size + ed25519.SIGNATURE_SIZE


def signed_message(checkpoint_body: str, timestamp: int) -> bytes:
    """`cosignature/v1`, `time <unix>` and the whole checkpoint body, newline-terminated."""
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_body}".encode()


def cosignature_timestamp(signature: bytes) -> int:
    """The POSIX time a cosignature (the bytes after the key ID) was made."""
    if len(signature) != _SIGNATURE_LENGTH:
        raise NoteError(f"cosignature is {len(signature)} bytes, expected {_SIGNATURE_LENGTH}")
    return _TIMESTAMP.unpack(signature[: _TIMESTAMP.size])[0]


@dataclass(frozen=True)
class CosignatureVerifier:
    """Checks cosignature/v1 signature lines of one cosigner (a note verifier)."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, SIGNATURE_TYPE_COSIGNATURE_V1, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        return cls(*parse_ed25519_vkey(vkey, SIGNATURE_TYPE_COSIGNATURE_V1, "cosignature/v1"))

    def vkey(self) -> str:
        return VerifierKey(
            self.name, self.key_id, SIGNATURE_TYPE_COSIGNATURE_V1, self.public_key
        ).format()

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != _SIGNATURE_LENGTH:
            return False
        timestamp = cosignature_timestamp(signature)
        message = signed_message(text.decode(), timestamp)
        return ed25519.verify(self.public_key, message, signature[_TIMESTAMP.size :])


@dataclass(frozen=True)
class Cosigner:
    """Makes cosignature/v1 signature lines under one cosigner name."""

    name: str
    key: ed25519.SigningKey

    def __post_init__(self) -> None:
        check_key_name(self.name)

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.key.public_key)

    def cosign(self, checkpoint_body: str, timestamp: int) -> Signature:
        if not 0 <= timestamp < 2**63:
            raise NoteError(f"cosignature timestamp {timestamp} is out of range")
        signature = self.key.sign(signed_message(checkpoint_body, timestamp))
        return Signature(self.name, self.verifier().key_id, _TIMESTAMP.pack(timestamp) + signature)


@dataclass(frozen=True)
class Quorum:
    """The cosigners whose keys are pinned outside the log's folder, and how many of them
    must have cosigned a checkpoint."""

    cosigners: tuple[CosignatureVerifier, ...] = ()
    required: int = 0

    def cosigned_by(self, note: str) -> list[str]:
        """Names of the pinned cosigners whose cosignature on `note` verifies; NoteError for a
        malformed or non-canonical signature line, or a pinned cosigner's bad signature."""
        return [s.name for s in verified_signatures(parse_note(note), self.cosigners)]

    def met_by(self, names: Sequence[str]) -> bool:
        return len(names) >= self.required

    def shortfall(self, size: int, names: Sequence[str]) -> str | None:
        """Why checkpoint `size`, cosigned by `names`, falls short of the quorum, or None."""
        if self.met_by(names):
            return None
        return (
            f"checkpoint {size} has {len(names)} cosignature(s) ({', '.join(names) or '-'}) "
            f"from the configured cosigners, the policy's quorum is {self.required}"
        )
