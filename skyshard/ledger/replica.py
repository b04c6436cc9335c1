"""A provider's replica of the ledger: it checks each pushed log and checkpoint against
everything it saw before, refuses rewritten or forked logs (split views), and cosigns."""

from __future__ import annotations

import base64
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.cosignature import CosignatureVerifier, Cosigner
from skyshard.ledger.keys import KEY_SUFFIX, load_or_create_signing_key
from skyshard.ledger.log import CHECKPOINT_DIR, LOG_FILE, LedgerError, write_atomically
from skyshard.ledger.merkle import ProofError, verify_consistency
from skyshard.ledger.note import (
    Ed25519Verifier,
    NoteError,
    Signature,
    check_key_name,
    parse_note,
    verified_signatures,
)
from skyshard.ledger.verify import verify_ledger

if TYPE_CHECKING:
    from skyshard.ledger import Ledger

STATE_FILE = "replica.json"
LOG_KEY_FILE = "log.vkey"
COSIGNER_KEY_FILE = f"cosigner{KEY_SUFFIX}"
COSIGNER_VKEY_FILE = "cosigner.vkey"


class ForkDetected(LedgerError):
    """The pushed log or checkpoint contradicts a checkpoint this replica already accepted."""


@dataclass(frozen=True)
class SeenCheckpoint:
    size: int
    root_hash: bytes


class Replica:
    """One provider's folder: a copy of the log, the last checkpoint it accepted, its key."""

    def __init__(self, directory: Path, provider_id: str, key_path: Path) -> None:
        check_key_name(provider_id)
        self.directory = Path(directory)
        self.provider_id = provider_id
        key = load_or_create_signing_key(key_path)
        self.cosigner = Cosigner(provider_id, key)

    @classmethod
    def open(cls, directory: Path, provider_id: str) -> Replica:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        replica = cls(directory, provider_id, directory / COSIGNER_KEY_FILE)
        vkey_path = directory / COSIGNER_VKEY_FILE
        if not vkey_path.exists():
            write_atomically(vkey_path, replica.cosigner.verifier().vkey().encode() + b"\n")
        return replica

    def last_seen(self) -> SeenCheckpoint | None:
        path = self.directory / STATE_FILE
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        return SeenCheckpoint(state["size"], base64.b64decode(state["root_hash"]))

    def trusted_log_key(self, offered: Ed25519Verifier) -> Ed25519Verifier:
        """The log's genesis key: pinned on first contact, and never allowed to change."""
        path = self.directory / LOG_KEY_FILE
        if not path.exists():
            write_atomically(path, offered.vkey().encode() + b"\n")
            return offered
        pinned = Ed25519Verifier.from_vkey(path.read_text())
        if pinned != offered:
            raise ForkDetected(
                f"{path}: the log's genesis key was {pinned.vkey()}, now {offered.vkey()}"
            )
        return pinned

    def receive(
        self,
        log_bytes: bytes,
        checkpoint_note: str,
        log_key: Ed25519Verifier,
        now: int | None = None,
    ) -> Signature:
        """Check a pushed log and its checkpoint; on success keep them and cosign."""
        genesis = self.trusted_log_key(log_key)
        checkpoint = Checkpoint.from_note(checkpoint_note)
        staging = self.directory / "incoming"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / CHECKPOINT_DIR).mkdir(parents=True)
        (staging / LOG_FILE).write_bytes(log_bytes)
        (staging / CHECKPOINT_DIR / f"{checkpoint.size}.note").write_text(checkpoint_note)
        result = verify_ledger(staging, genesis)
        if not result.ok:
            raise LedgerError(
                f"provider {self.provider_id} refuses the pushed log: {result.describe()}"
            )
        assert result.tree is not None
        self._check_extends_last_seen(checkpoint, result.tree)
        (self.directory / CHECKPOINT_DIR).mkdir(exist_ok=True)
        (staging / LOG_FILE).replace(self.directory / LOG_FILE)
        write_atomically(
            self.directory / CHECKPOINT_DIR / f"{checkpoint.size}.note", checkpoint_note.encode()
        )
        state = {
            "origin": checkpoint.origin,
            "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
            "size": checkpoint.size,
        }
        write_atomically(self.directory / STATE_FILE, json.dumps(state, sort_keys=True).encode())
        shutil.rmtree(staging, ignore_errors=True)
        return self.cosigner.cosign(checkpoint.body(), int(time.time()) if now is None else now)

    def _check_extends_last_seen(self, checkpoint: Checkpoint, tree) -> None:
        seen = self.last_seen()
        if seen is None:
            return
        if checkpoint.size < seen.size:
            raise ForkDetected(
                f"checkpoint {checkpoint.size} is older than checkpoint {seen.size} "
                f"provider {self.provider_id} already cosigned (rollback)"
            )
        try:
            proof = tree.consistency_proof(seen.size, checkpoint.size)
            verify_consistency(
                seen.size, checkpoint.size, seen.root_hash, checkpoint.root_hash, proof
            )
        except ProofError as exc:
            raise ForkDetected(
                f"split view: the pushed log does not extend checkpoint {seen.size} "
                f"(root {seen.root_hash.hex()}) that provider {self.provider_id} cosigned: {exc}"
            ) from exc


Push = Callable[["ReplicaTarget", bytes, str, Ed25519Verifier], str]
"""Hands a replica the covered log, the checkpoint note and the genesis key; returns the
cosignature line it answered (checked against the pinned key by `sync_replica`)."""


def push_to_folder(target: ReplicaTarget, log: bytes, note: str, genesis: Ed25519Verifier) -> str:
    """A replica that is a folder this process can write (its cosigner key lives there)."""
    return Replica.open(Path(target.location), target.name).receive(log, note, genesis).line()


@dataclass(frozen=True)
class ReplicaTarget:
    """A configured cosigner: its name, the key pinned for it, where its replica lives and how
    to reach it."""

    name: str
    verifier: CosignatureVerifier
    location: str
    push: Push = push_to_folder


def sync_replica(ledger: Ledger, target: ReplicaTarget) -> int:
    """Push the verified log and a fresh checkpoint to one replica and store its cosignature;
    returns the checkpoint size. Refuses a tampered log and a cosignature not made by the
    key pinned for the replica."""
    note = ledger.checkpoint()
    ledger.verified_entries()
    genesis = ledger.genesis()
    if genesis is None:
        raise LedgerError(f"{ledger.client.directory}: no pinned genesis key to give replicas")
    checkpoint = Checkpoint.from_note(note)
    log_bytes = _first_lines(ledger.log_path.read_bytes(), checkpoint.size)
    line = target.push(target, log_bytes, note, genesis)
    try:
        answered = parse_note(f"{checkpoint.body()}\n{line}")
        pinned = verified_signatures(answered, [target.verifier])
    except NoteError as exc:
        raise LedgerError(f"replica {target.name} answered a bad cosignature: {exc}") from exc
    if len(pinned) != 1 or len(answered.signatures) != 1:
        raise LedgerError(
            f"replica {target.name} at {target.location} did not cosign with the key pinned "
            f"in policy.yaml ({target.verifier.vkey()})"
        )
    ledger.store_cosignatures(checkpoint.size, [line])
    return checkpoint.size


def cosign_latest(ledger: Ledger, targets: Sequence[ReplicaTarget]) -> dict[str, str]:
    """Sync every replica it can reach; a replica's outcome per name ("cosigned N" or why
    not). A replica refusing the log (fork, tampering) is an error, not unreachability."""
    outcomes = {}
    for target in targets:
        try:
            outcomes[target.name] = f"cosigned {sync_replica(ledger, target)}"
        except OSError as exc:
            outcomes[target.name] = f"unreachable: {exc}"
    return outcomes


def _first_lines(data: bytes, count: int) -> bytes:
    """The first `count` newline-terminated lines: what the checkpoint covers."""
    end = 0
    for _ in range(count):
        end = data.index(b"\n", end) + 1
    return data[:end]


def serve_push(argv: Sequence[str], stdin: BinaryIO, stdout: TextIO) -> None:
    """The replica's side of a push over SSH: `python -m skyshard.ledger.replica ROOT
    PROVIDER LOG_VKEY LOG_BYTES` with the log, then the checkpoint note, on stdin; prints the
    cosignature line. The provider's cosigner key never leaves its host."""
    if len(argv) != 4 or not argv[3].isdigit():
        raise LedgerError("usage: python -m skyshard.ledger.replica ROOT PROVIDER LOG_VKEY BYTES")
    root, provider, vkey, length = argv
    data = stdin.read()
    log_bytes, note = data[: int(length)], data[int(length) :].decode()
    replica = Replica.open(Path(root), provider)
    stdout.write(replica.receive(log_bytes, note, Ed25519Verifier.from_vkey(vkey)).line())


if __name__ == "__main__":
    try:
        serve_push(sys.argv[1:], sys.stdin.buffer, sys.stdout)
    except (LedgerError, NoteError, OSError, ValueError) as error:
        sys.exit(f"replica refused the push: {error}")
