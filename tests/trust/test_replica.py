"""Provider replicas cosign consistent checkpoints and refuse forks; migration receipts."""

from __future__ import annotations

import pytest

from skyshard.trust import Ledger, LedgerError
from skyshard.trust.checkpoint import Checkpoint
from skyshard.trust.cosignature import CosignatureVerifier
from skyshard.trust.ed25519 import SigningKey
from skyshard.trust.note import Ed25519Signer, NoteError
from skyshard.trust.receipt import sign_receipt, verify_receipt
from skyshard.trust.replica import COSIGNER_VKEY_FILE, ForkDetected, Replica
from skyshard.trust.verify import verify_ledger

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
    result = verify_ledger(ledger.directory, cosigners=[verifier])
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


def test_migration_receipt_round_trip(ledger, tmp_path):
    replica = Replica.open(tmp_path / "provider-b", "provider-b")
    receipt = {"migration_id": "m-1", "provider": "provider-b", "shard_id": "s-7", "bytes": 4096}
    payload = sign_receipt(replica.receipt_signer, receipt)
    entry = ledger.append("provider_receipt", "run-9", "provider-b", payload)
    trusted = [replica.receipt_signer.verifier()]
    assert verify_receipt(entry.payload, trusted) == receipt
    forged = dict(entry.payload, receipt=dict(receipt, bytes=1))
    with pytest.raises(NoteError, match="differs from the signed receipt"):
        verify_receipt(forged, trusted)
    with pytest.raises(NoteError, match="missing field"):
        sign_receipt(replica.receipt_signer, {"provider": "provider-b"})
    with pytest.raises(NoteError, match="is not the signer"):
        sign_receipt(replica.receipt_signer, dict(receipt, provider="provider-c"))
