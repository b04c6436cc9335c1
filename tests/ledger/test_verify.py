"""Tampering with the log, its signatures or its checkpoints is caught at the first bad index."""

from __future__ import annotations

import json

import pytest

from skyshard.ledger import Ledger
from skyshard.ledger import verify as verify_module
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.cosignature import Cosigner, Quorum
from skyshard.ledger.ed25519 import SigningKey
from skyshard.ledger.entry import canonical_json, make_entry
from skyshard.ledger.merkle import MerkleTree
from skyshard.ledger.note import sign_note
from skyshard.ledger.verify import verify_ledger

from .conftest import ORIGIN, fill, make_signer


@pytest.fixture
def signed_ledger(ledger):
    fill(ledger, 10)
    ledger.checkpoint()
    return ledger


def lines_of(ledger):
    return (ledger.directory / "log.jsonl").read_bytes().splitlines(keepends=True)


def write_lines(ledger, lines):
    (ledger.directory / "log.jsonl").write_bytes(b"".join(lines))


def assert_fails_at(ledger, index, reason):
    result = ledger.verify()
    assert not result.ok
    assert result.first_bad_index == index, result.reason
    assert reason in result.reason


def test_untouched_ledger_verifies(signed_ledger):
    result = signed_ledger.verify()
    assert result.ok and result.entries == 10 and result.checkpoints == 1


def test_modified_entry(signed_ledger):
    lines = lines_of(signed_ledger)
    lines[4] = lines[4].replace(b'"i":4', b'"i":5')
    write_lines(signed_ledger, lines)
    assert_fails_at(signed_ledger, 4, "signature does not verify")


def test_deleted_entry(signed_ledger):
    lines = lines_of(signed_ledger)
    del lines[4]
    write_lines(signed_ledger, lines)
    assert_fails_at(signed_ledger, 4, "seq is 5, expected 4")


def test_reordered_entries(signed_ledger):
    lines = lines_of(signed_ledger)
    lines[4], lines[5] = lines[5], lines[4]
    write_lines(signed_ledger, lines)
    assert_fails_at(signed_ledger, 4, "seq is 5, expected 4")


def test_truncated_log_behind_a_checkpoint(signed_ledger):
    write_lines(signed_ledger, lines_of(signed_ledger)[:6])
    assert_fails_at(signed_ledger, 6, "entries from 6 on are missing")


def test_inserted_entry_forged_with_another_key(signed_ledger):
    lines = lines_of(signed_ledger)
    forged = make_entry(4, "run_succeeded", "run-4", "broker", {}, make_signer(9, ORIGIN))
    lines.insert(4, forged.line + b"\n")
    write_lines(signed_ledger, lines)
    assert_fails_at(signed_ledger, 4, "but the active key is")


def test_inserted_entry_claiming_the_right_key(signed_ledger):
    lines = lines_of(signed_ledger)
    forged = json.loads(make_entry(4, "run_succeeded", "r", "broker", {}, make_signer(9)).line)
    forged["key_id"] = json.loads(lines[0])["key_id"]
    lines.insert(4, canonical_json(forged) + b"\n")
    write_lines(signed_ledger, lines)
    assert_fails_at(signed_ledger, 4, "signature does not verify")


def test_replaced_signature(signed_ledger):
    lines = lines_of(signed_ledger)
    entry = json.loads(lines[4])
    entry["sig"] = json.loads(lines[3])["sig"]
    lines[4] = canonical_json(entry) + b"\n"
    write_lines(signed_ledger, lines)
    assert_fails_at(signed_ledger, 4, "signature does not verify")


def test_non_canonical_rewrite(signed_ledger):
    lines = lines_of(signed_ledger)
    lines[2] = json.dumps(json.loads(lines[2]), sort_keys=True).encode() + b"\n"
    write_lines(signed_ledger, lines)
    assert_fails_at(signed_ledger, 2, "canonical")


def test_whole_log_resigned_with_a_wrong_key(signed_ledger, tmp_path):
    impostor = Ledger.open(tmp_path / "impostor", make_signer(9, ORIGIN))
    fill(impostor, 10)
    write_lines(signed_ledger, lines_of(impostor))
    assert_fails_at(signed_ledger, 0, "but the active key is")


def test_tampered_checkpoint_root(signed_ledger, signer):
    path = signed_ledger.directory / "checkpoints" / "10.note"
    forged = Checkpoint(ORIGIN, 10, b"\x00" * 32).body()
    path.write_text(sign_note(forged, [signer]))
    result = signed_ledger.verify()
    assert not result.ok and result.bad_checkpoint == 10
    assert "differs from the root recomputed" in result.reason
    path.write_text(path.read_text().replace("— ", "— x"))
    assert "log signature" in signed_ledger.verify().reason


def test_bad_cosignature_by_a_known_cosigner_fails(signed_ledger):
    cosigner = Cosigner("provider-a", SigningKey(b"\x03" * 32))
    note_path = signed_ledger.directory / "checkpoints" / "10.note"
    body = Checkpoint.from_note(note_path.read_text()).body()
    line = cosigner.cosign(body, 1_800_000_000).line()
    signed_ledger.store_cosignatures(10, [line])
    result = signed_ledger.verify(Quorum((cosigner.verifier(),)))
    assert result.ok and result.cosignatures == {10: ["provider-a"]}
    forged = cosigner.cosign(body.replace("10", "11", 1), 1_800_000_000).line()
    signed_ledger.store_cosignatures(10, [forged])
    result = signed_ledger.verify(Quorum((cosigner.verifier(),)))
    assert not result.ok and "cosignature" in result.reason


@pytest.mark.parametrize("workers", [1, 2])
def test_chunked_verification_reports_the_first_bad_index(ledger, monkeypatch, workers):
    """Chunks of about 10 entries, checked by worker processes or in this one: key rotations
    are followed across chunks, the root is the log's, and the first bad index is the same
    whichever chunk finishes first."""
    monkeypatch.setattr(verify_module, "_CHUNK_BYTES", 2048)
    monkeypatch.setattr(verify_module, "_PARALLEL_BYTES", 0)
    genesis = ledger.verifier()
    fill(ledger, 100)
    ledger.rotate_key(SigningKey(b"\x04" * 32))
    fill(ledger, 100)
    lines = lines_of(ledger)
    result = verify_ledger(ledger.directory, genesis, workers=workers)
    assert result.ok, result.reason
    assert result.root_hash == MerkleTree.from_leaves(line[:-1] for line in lines).root()
    assert result.end_offset == sum(len(line) for line in lines)
    for bad in (170, 120, 160):
        lines[bad] = lines[bad].replace(b"run-", b"RUN-")
    write_lines(ledger, lines)
    result = verify_ledger(ledger.directory, genesis, workers=workers)
    assert result.first_bad_index == 120 and result.tree.size == 120
    assert "signature does not verify" in result.reason
    del lines[60]
    write_lines(ledger, lines)
    result = verify_ledger(ledger.directory, genesis, workers=workers)
    assert result.first_bad_index == 60 and "seq is 61, expected 60" in result.reason


def test_an_invalid_key_rotation_is_the_first_bad_index(ledger, signer, monkeypatch):
    monkeypatch.setattr(verify_module, "_CHUNK_BYTES", 2048)
    fill(ledger, 30)
    rotation = make_entry(30, "key_rotation", "", "ledger", {"new_key": "not a key"}, signer)
    after = make_entry(31, "run_started", "run-31", "broker", {}, signer)
    write_lines(ledger, [*lines_of(ledger), rotation.line + b"\n", after.line + b"\n"])
    result = verify_ledger(ledger.directory, ledger.verifier())
    assert result.first_bad_index == 30 and "invalid key_rotation" in result.reason


def test_an_empty_log_and_a_lone_torn_line_have_no_entries(tmp_path, signer):
    folder = tmp_path / "ledger"
    folder.mkdir()
    for content in (b"", b'{"actor":"bro'):
        (folder / "log.jsonl").write_bytes(content)
        result = verify_ledger(folder, signer.verifier(), workers=2)
        assert result.ok and result.entries == 0 and result.end_offset == 0
        assert (result.torn_tail is not None) == bool(content)
