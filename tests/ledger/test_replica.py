"""Provider replicas cosign consistent checkpoints and refuse forks."""

from __future__ import annotations

import pytest

from skyshard.ledger import Ledger, LedgerError
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.cosignature import CosignatureVerifier, Quorum
from skyshard.ledger.ed25519 import SigningKey
from skyshard.ledger.note import Ed25519Signer
from skyshard.ledger.replica import COSIGNER_VKEY_FILE, ForkDetected, Replica

from .conftest import fill


def push(ledger: Ledger, replica: Replica, now: int = 1_800_000_000):
    note = ledger.checkpoint()
    log_bytes = (ledger.directory / "log.jsonl").read_bytes()
    signature = replica.receive(log_bytes, note, ledger.verifier(), now=now)
    ledger.store_cosignatures(Checkpoint.from_note(note).size, [signature.line()])
    return signature


def test_replica_cosigns_each_consistent_checkpoint(ledger, tmp_path):
    replica = Replica.open(tmp_path / "provider-a", "provider-a")
    fill(ledger, 5)
    push(ledger, replica)
    fill(ledger, 3)
    push(ledger, replica)
    assert replica.last_seen().size == 8
    verifier = CosignatureVerifier.from_vkey((replica.directory / COSIGNER_VKEY_FILE).read_text())
    result = ledger.verify(Quorum((verifier,)))
    assert result.ok, result.reason
    assert result.cosignatures == {5: ["provider-a"], 8: ["provider-a"]}
    assert (replica.directory / "log.jsonl").read_bytes() == (
        ledger.directory / "log.jsonl"
    ).read_bytes()


def test_replica_detects_a_fork(ledger, signer, tmp_path):
    replica = Replica.open(tmp_path / "provider-a", "provider-a")
    fill(ledger, 5)
    push(ledger, replica)
    # The log operator (who holds the key) rewrites history and signs a fresh log.
    forked = Ledger.open(tmp_path / "forked", signer)
    forked.append_many([("run_failed", f"other-{i}", "broker", {}) for i in range(7)])
    with pytest.raises(
        ForkDetected, match="split view: the pushed log does not extend checkpoint 5"
    ):
        push(forked, replica)
    assert replica.last_seen().size == 5


def test_replica_refuses_rollback_and_tampered_pushes(ledger, tmp_path):
    replica = Replica.open(tmp_path / "provider-a", "provider-a")
    fill(ledger, 5)
    old_note = ledger.checkpoint()
    old_log = (ledger.directory / "log.jsonl").read_bytes()
    fill(ledger, 2)
    push(ledger, replica)
    with pytest.raises(ForkDetected, match="older than checkpoint 7"):
        replica.receive(old_log, old_note, ledger.verifier())
    tampered = (ledger.directory / "log.jsonl").read_bytes().replace(b"run-3", b"run-X")
    with pytest.raises(LedgerError, match="refuses the pushed log: entry 3"):
        replica.receive(tampered, ledger.checkpoint(), ledger.verifier())


def test_replica_pins_the_log_key(ledger, tmp_path):
    replica = Replica.open(tmp_path / "provider-a", "provider-a")
    fill(ledger, 2)
    push(ledger, replica)
    impostor = Ed25519Signer(ledger.origin, SigningKey(b"\x09" * 32))
    with pytest.raises(ForkDetected, match="genesis key was"):
        replica.receive(b"", ledger.checkpoint(), impostor.verifier())
