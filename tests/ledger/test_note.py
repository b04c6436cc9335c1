"""C2SP signed-note, tlog-checkpoint and tlog-cosignature: known answers and strict parsing."""

from __future__ import annotations

import base64

import pytest

from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.cosignature import (
    CosignatureVerifier,
    Cosigner,
    cosignature_timestamp,
    signed_message,
)
from skyshard.ledger.ed25519 import SigningKey
from skyshard.ledger.note import (
    Ed25519Signer,
    Ed25519Verifier,
    NoteError,
    VerifierKey,
    open_note,
    parse_note,
    sign_note,
)

# golang.org/x/mod/sumdb/note example (note_test.go / package docs).
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_NOTE = (
    PETER_TEXT + "\n— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
# transparency-dev/formats note_cosigv1_test.go: an Ed25519 key (type 0x01, '+' in base64),
# a native cosignature/v1 key (type 0x04) and a cosignature made at 1727964367.
PLUS_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
COSIGNATURE_B64 = (
    "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFi"
    "EBYJXORmnFBOBA=="
)


def peter_signer() -> Ed25519Signer:
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]
    return Ed25519Signer("PeterNeumann", SigningKey(seed))


def test_go_sumdb_note_known_answer_sign_and_open():
    signer = peter_signer()
    assert signer.verifier().vkey() == PETER_VKEY
    assert sign_note(PETER_TEXT, [signer]) == PETER_NOTE
    note, verified = open_note(PETER_NOTE, [Ed25519Verifier.from_vkey(PETER_VKEY)])
    assert note.text == PETER_TEXT
    assert [(s.name, s.key_id.hex()) for s in verified] == [("PeterNeumann", "c74f20a3")]


@pytest.mark.parametrize("vkey", [PETER_VKEY, ENOCH_VKEY, PLUS_VKEY])
def test_verifier_keys_round_trip_and_key_ids_match(vkey):
    assert Ed25519Verifier.from_vkey(vkey).vkey() == vkey


def test_cosignature_key_id_and_timestamp_known_answers():
    verifier = CosignatureVerifier.from_vkey(REMORA_VKEY)
    assert verifier.key_id.hex() == "da77ade7"
    assert verifier.vkey() == REMORA_VKEY
    raw = base64.b64decode(COSIGNATURE_B64)
    assert cosignature_timestamp(raw[4:]) == 1727964367


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann+c74f20a3", "is not <name>"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex digits"),
        ("Peter+Neumann+c74f20a3+ARpc", "8 hex digits"),
        ("rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!", "not valid base64"),
        (REMORA_VKEY, "expected Ed25519"),
    ],
)
def test_bad_verifier_keys_are_refused(vkey, message):
    with pytest.raises(NoteError, match=message):
        Ed25519Verifier.from_vkey(vkey)


def test_cosignature_verifier_refuses_plain_ed25519_key():
    with pytest.raises(NoteError, match="expected cosignature/v1"):
        CosignatureVerifier.from_vkey(PETER_VKEY)


def test_vkey_parser_reports_type():
    assert VerifierKey.parse(REMORA_VKEY).signature_type == 0x04


def test_unknown_signatures_are_ignored_known_bad_ones_rejected():
    enoch = Ed25519Verifier.from_vkey(ENOCH_VKEY)
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(PETER_NOTE, [enoch])
    other = Ed25519Signer("Someone", SigningKey(b"\x07" * 32))
    doubly = parse_note(PETER_NOTE).with_signatures([other]).format()
    _, verified = open_note(doubly, [Ed25519Verifier.from_vkey(PETER_VKEY)])
    assert [s.name for s in verified] == ["PeterNeumann"]
    tampered = PETER_NOTE.replace("cryptography", "cryptographY")
    with pytest.raises(NoteError, match="signature by PeterNeumann\\+c74f20a3 does not verify"):
        open_note(tampered, [Ed25519Verifier.from_vkey(PETER_VKEY)])


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (PETER_TEXT, "no blank line"),
        (PETER_NOTE[:-1], "must end with a newline"),
        (PETER_NOTE.replace("— ", "- "), "does not start with an em dash"),
        (PETER_NOTE.replace("PeterNeumann x08", "Peter Neumann x08"), "is not '— <name>"),
        (PETER_NOTE.replace("PeterNeumann x08", "Peter+Neumann x08"), "without spaces or '\\+'"),
        (PETER_NOTE.replace("x08go", "x08g%"), "not valid base64"),
        (PETER_NOTE.replace("AM=\n", "AM\n"), "not valid base64"),
        (PETER_NOTE.replace("problem,", "problem,\t"), "control character"),
        (PETER_TEXT + "\n", "no signature lines"),
        (b"\xff\xfe" + PETER_NOTE.encode(), "not valid UTF-8"),
        (PETER_TEXT + "\n— PeterNeumann AAAA\n", "too short"),
    ],
)
def test_malformed_notes_are_refused(message, error):
    with pytest.raises(NoteError, match=error):
        parse_note(message)


def test_checkpoint_body_round_trip_and_strictness():
    checkpoint = Checkpoint("example.com/behind-the-sofa", 20852163, b"\x0a" * 32, ("ext",))
    body = checkpoint.body()
    assert body.splitlines()[:2] == ["example.com/behind-the-sofa", "20852163"]
    assert Checkpoint.parse_body(body) == checkpoint
    for bad, error in [
        ("origin\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "decimal"),
        ("origin\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "decimal"),
        ("origin\n12\n", "needs origin, size and root"),
        ("origin\n12\nAAAA\n", "not 32"),
        ("origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n", "extension line"),
    ]:
        with pytest.raises(NoteError, match=error):
            Checkpoint.parse_body(bad)


def test_spec_example_checkpoint_parses():
    note = (
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
        "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
        "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
        "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrD"
        "JsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
    )
    checkpoint = Checkpoint.from_note(note)
    assert checkpoint.size == 20852163
    witness = parse_note(note).signatures[1]
    assert cosignature_timestamp(witness.signature) == 1679315147  # the spec's example time


def test_cosign_round_trip_covers_whole_body_and_time():
    cosigner = Cosigner("provider-a", SigningKey(b"\x05" * 32))
    body = Checkpoint("log.example/x", 3, b"\x01" * 32, ("extension",)).body()
    assert signed_message(body, 1700000000).startswith(b"cosignature/v1\ntime 1700000000\nlog")
    signature = cosigner.cosign(body, 1700000000)
    verifier = cosigner.verifier()
    assert verifier.key_id == signature.key_id
    assert verifier.verify(body.encode(), signature.signature)
    assert cosignature_timestamp(signature.signature) == 1700000000
    assert not verifier.verify(body.replace("extension", "extensioN").encode(), signature.signature)
    forged_time = (1700000001).to_bytes(8, "big") + signature.signature[8:]
    assert not verifier.verify(body.encode(), forged_time)
    # The key ID differs from the plain Ed25519 key ID of the same key and name.
    assert Ed25519Signer("provider-a", cosigner.key).key_id != verifier.key_id
