"""A general transparency log: signed, append-only entries in an RFC 6962 Merkle tree with
C2SP checkpoints, cosignatures and key rotation. It knows nothing of what its entries mean
(skyshard's event types live in `skyshard.trust.events`).

`Ledger` is what the rest of skyshard calls; the modules beside it are named after the
RFC 6962 / C2SP concepts they implement.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyshard import paths
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.cosignature import CosignatureVerifier
from skyshard.ledger.ed25519 import SigningKey
from skyshard.ledger.entry import KEY_ROTATION, Entry
from skyshard.ledger.keys import (
    KEY_SUFFIX,
    load_or_create_signing_key,
    load_signing_key,
    rotation_payload,
    write_signing_key,
)
from skyshard.ledger.log import (
    ACTIVE_KEY_FILE,
    AppendOnlyLog,
    LedgerError,
    Record,
    latest_checkpoint_note,
    read_entries,
    read_vkey,
)
from skyshard.ledger.merkle import verify_inclusion
from skyshard.ledger.note import Ed25519Signer, Ed25519Verifier
from skyshard.ledger.verify import VerifyResult, verify_ledger

DEFAULT_ORIGIN = "skyshard.local/ledger"
LEDGER_KEY_NAME = "ledger"


@dataclass(frozen=True)
class InclusionProof:
    """Proof that entry `seq` is leaf `seq` of the tree in `checkpoint`."""

    seq: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]
    root_hash: bytes
    checkpoint: str

    def verify(self) -> None:
        verify_inclusion(self.seq, self.tree_size, self.leaf_hash, self.hashes, self.root_hash)


class Ledger:
    """Append entries, sign checkpoints and prove inclusion for one ledger folder."""

    def __init__(
        self,
        directory: Path,
        signer: Ed25519Signer,
        key_path: Path | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.signer = signer
        self._key_path = key_path
        self._log = AppendOnlyLog(self.directory)

    @classmethod
    def open(
        cls,
        directory: Path | None = None,
        signer: Ed25519Signer | None = None,
        *,
        keys_dir: Path | None = None,
        origin: str = DEFAULT_ORIGIN,
    ) -> Ledger:
        """Open (or create) a ledger; without `signer` the key is `<keys>/ledger.ed25519`,
        created on first use."""
        directory = Path(directory) if directory else paths.ledger_dir()
        if signer is not None:
            return cls(directory, signer)
        key_path = Path(keys_dir or paths.keys_dir()) / f"{LEDGER_KEY_NAME}{KEY_SUFFIX}"
        _finish_interrupted_rotation(directory, key_path, origin)
        return cls(directory, Ed25519Signer(origin, load_or_create_signing_key(key_path)), key_path)

    @property
    def origin(self) -> str:
        return self.signer.name

    def verifier(self) -> Ed25519Verifier:
        return self.signer.verifier()

    def append(
        self, type: str, run_id: str, actor: str, payload: dict[str, Any] | None = None
    ) -> Entry:
        return self.append_many([Record(type, run_id, actor, payload or {})])[0]

    def append_many(self, records: Sequence[Record | tuple]) -> list[Entry]:
        """Append several entries with one write and one fsync (group commit)."""
        return self._log.append_many(self.signer, [Record(*r) for r in records])

    def checkpoint(self) -> str:
        """Sign (if the log grew) and return the checkpoint note of the whole log."""
        return self._log.sign_checkpoint(self.signer, self.origin)

    def latest_checkpoint(self) -> str | None:
        return latest_checkpoint_note(self.directory)

    def entries(self, type: str | None = None) -> Iterator[Entry]:
        return read_entries(self.directory, type)

    def verified_entries(self, type: str | None = None) -> Iterator[Entry]:
        return read_entries(self.directory, type)

    def proof(self, seq: int) -> InclusionProof:
        """Inclusion proof of entry `seq` against the latest checkpoint (signing a new one if
        the latest does not cover `seq` yet)."""
        note = self.latest_checkpoint()
        if note is None or Checkpoint.from_note(note).size <= seq:
            note = self.checkpoint()
        checkpoint = Checkpoint.from_note(note)
        if seq < 0 or seq >= checkpoint.size:
            raise LedgerError(f"entry {seq} does not exist: the log has {checkpoint.size} entries")
        tree = self._log.refresh_tree()
        if tree.size < checkpoint.size or tree.root(checkpoint.size) != checkpoint.root_hash:
            raise LedgerError(
                f"the log no longer matches checkpoint {checkpoint.size}; run ledger verify"
            )
        return InclusionProof(
            seq=seq,
            tree_size=checkpoint.size,
            leaf_hash=tree.leaf_hash_at(seq),
            hashes=tree.inclusion_proof(seq, checkpoint.size),
            root_hash=checkpoint.root_hash,
            checkpoint=note,
        )

    def rotate_key(self, new_key: SigningKey | None = None, reason: str = "") -> Entry:
        """Announce a new key in a key_rotation entry signed by the current one, then switch.
        With a key file, the new key is saved first as `<key>.next` so a crash loses nothing."""
        new_key = new_key or SigningKey.generate()
        new_signer = Ed25519Signer(self.origin, new_key)
        pending = None
        if self._key_path is not None:
            pending = self._key_path.with_name(self._key_path.name + ".next")
            write_signing_key(pending, new_key)
        payload = rotation_payload(new_signer.verifier(), reason)
        entry = self.append(KEY_ROTATION, "", "ledger", payload)
        if pending is not None and self._key_path is not None:
            _promote_pending_key(self._key_path, pending, self.signer)
        self.signer = new_signer
        return entry

    def verify(self, cosigners: Sequence[CosignatureVerifier] = ()) -> VerifyResult:
        return verify_ledger(self.directory, cosigners=cosigners)

    def store_cosignatures(self, size: int, signature_lines: Sequence[str]) -> str:
        return self._log.store_cosignatures(size, signature_lines)


def _promote_pending_key(key_path: Path, pending: Path, old: Ed25519Signer) -> None:
    retired = key_path.with_name(f"{LEDGER_KEY_NAME}-{old.key_id.hex()}{KEY_SUFFIX}.retired")
    key_path.replace(retired)
    pending.replace(key_path)


def _finish_interrupted_rotation(directory: Path, key_path: Path, origin: str) -> None:
    """If a rotation entry was written but the new key file not yet moved into place, do it."""
    pending = key_path.with_name(key_path.name + ".next")
    active = read_vkey(directory / ACTIVE_KEY_FILE)
    if not pending.exists() or active is None:
        return
    pending_signer = Ed25519Signer(origin, load_signing_key(pending))
    if pending_signer.verifier() == active:
        _promote_pending_key(key_path, pending, Ed25519Signer(origin, load_signing_key(key_path)))
    else:
        pending.unlink()  # never announced in the log, so never trusted by anyone


__all__ = [
    "DEFAULT_ORIGIN",
    "Entry",
    "InclusionProof",
    "Ledger",
    "LedgerError",
    "Record",
    "VerifyResult",
]
