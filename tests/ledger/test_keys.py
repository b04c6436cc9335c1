"""Key files and key rotation."""

from __future__ import annotations

import os

import pytest

from skyshard.ledger import Ledger, LedgerError
from skyshard.ledger.ed25519 import SigningKey
from skyshard.ledger.entry import make_entry
from skyshard.ledger.keys import (
    KeyFileError,
    load_signing_key,
    rotation_payload,
    write_signing_key,
)
from skyshard.ledger.note import Ed25519Signer, NoteError

from .conftest import ORIGIN, make_signer


def test_pem_and_raw_key_files(tmp_path):
    key = SigningKey(b"\x02" * 32)
    pem = tmp_path / "k.ed25519"
    write_signing_key(pem, key)
    assert os.stat(pem).st_mode & 0o777 == 0o600
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_signing_key(pem).public_key == key.public_key
    raw = tmp_path / "raw.key"
    raw.write_bytes(key.seed)
    raw.chmod(0o600)
    assert load_signing_key(raw).public_key == key.public_key
    with pytest.raises(KeyFileError, match="already exists"):
        write_signing_key(pem, key)


def test_key_file_errors_name_the_file(tmp_path):
    loose = tmp_path / "loose.key"
    loose.write_bytes(b"\x01" * 32)
    loose.chmod(0o644)
    with pytest.raises(KeyFileError, match=f"{loose}: key file mode is 0644.*chmod 600"):
        load_signing_key(loose)
    junk = tmp_path / "junk.key"
    junk.write_bytes(b"not a key")
    junk.chmod(0o600)
    with pytest.raises(KeyFileError, match=f"{junk}: not an unencrypted PEM"):
        load_signing_key(junk)
    with pytest.raises(KeyFileError, match="cannot read key file"):
        load_signing_key(tmp_path / "missing.key")


def test_rotation_is_signed_by_the_old_key_and_verification_follows_it(tmp_path):
    keys = tmp_path / "keys"
    ledger = Ledger.open(tmp_path / "ledger", keys_dir=keys)
    old = ledger.signer
    ledger.append("run_started", "r1", "broker", {})
    ledger.checkpoint()
    rotation = ledger.rotate_key(reason="scheduled")
    assert rotation.key_id == old.key_id.hex()
    assert ledger.signer.key_id != old.key_id
    after = ledger.append("run_succeeded", "r1", "broker", {})
    assert after.key_id == ledger.signer.key_id.hex()
    ledger.checkpoint()
    result = ledger.verify()
    assert result.ok, result.reason
    assert result.checkpoints == 2
    # The key file on disk is now the new key; the old one is kept, retired.
    reopened = Ledger.open(tmp_path / "ledger", keys_dir=keys)
    assert reopened.signer.key_id == ledger.signer.key_id
    assert list(keys.glob("*.retired"))
    # The old key may no longer append, and entries it signs after the rotation fail verify.
    with pytest.raises(LedgerError, match="not the ledger's active key"):
        Ledger(ledger.directory, old).append("run_started", "r2", "broker", {})
    stale = make_entry(3, "run_started", "r2", "broker", {}, old)
    with (ledger.directory / "log.jsonl").open("ab") as file:
        file.write(stale.line + b"\n")
    result = ledger.verify()
    assert result.first_bad_index == 3 and "active key" in result.reason


def test_forged_rotation_by_a_stranger_fails(tmp_path):
    ledger = Ledger.open(tmp_path / "ledger", make_signer())
    ledger.append("run_started", "r1", "broker", {})
    stranger = make_signer(8, ORIGIN)
    rotation = make_entry(
        1, "key_rotation", "", "ledger", {"new_key": stranger.verifier().vkey()}, stranger
    )
    with (ledger.directory / "log.jsonl").open("ab") as file:
        file.write(rotation.line + b"\n")
    result = ledger.verify()
    assert result.first_bad_index == 1


def test_rotation_with_a_malformed_new_key_is_refused_and_fails_verification(tmp_path, signer):
    ledger = Ledger.open(tmp_path / "ledger", signer)
    with pytest.raises(NoteError, match="verifier key 'nope'"):
        ledger.append("key_rotation", "", "ledger", {"new_key": "nope"})
    assert not (ledger.directory / "log.jsonl").exists()
    entry = make_entry(0, "key_rotation", "", "ledger", {"new_key": "nope"}, signer)
    (ledger.directory / "log.jsonl").write_bytes(entry.line + b"\n")
    result = ledger.verify()
    assert result.first_bad_index == 0 and "invalid key_rotation" in result.reason


def test_interrupted_rotation_is_finished_on_open(tmp_path):
    keys = tmp_path / "keys"
    ledger = Ledger.open(tmp_path / "ledger", keys_dir=keys)
    ledger.append("run_started", "r1", "broker", {})
    new_key = SigningKey(b"\x04" * 32)
    # Crash after the rotation entry was written, before the key file was moved into place.
    write_signing_key(keys / "ledger.ed25519.next", new_key)
    payload = rotation_payload(Ed25519Signer(ledger.origin, new_key).verifier())
    ledger.append("key_rotation", "", "ledger", payload)
    reopened = Ledger.open(tmp_path / "ledger", keys_dir=keys)
    assert reopened.signer.key.public_key == new_key.public_key
    reopened.append("run_succeeded", "r1", "broker", {})
    assert reopened.verify().ok
