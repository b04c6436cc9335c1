"""A migration target's signed receipt: a signed note carrying the canonical JSON of what the
provider received, stored as the payload of a provider_receipt entry."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from skyshard.trust.entry import canonical_json, check_no_secrets
from skyshard.trust.note import Ed25519Signer, Ed25519Verifier, NoteError, open_note, sign_note

HEADER = "skyshard-receipt/v1"
REQUIRED_FIELDS = ("migration_id", "provider", "shard_id")


def sign_receipt(signer: Ed25519Signer, receipt: Mapping[str, Any]) -> dict[str, Any]:
    """The provider_receipt payload: the receipt, its signed note and the signer's key."""
    missing = [f for f in REQUIRED_FIELDS if f not in receipt]
    if missing:
        raise NoteError(f"receipt is missing field(s): {', '.join(missing)}")
    if receipt["provider"] != signer.name:
        raise NoteError(
            f"receipt.provider {receipt['provider']!r} is not the signer {signer.name!r}"
        )
    check_no_secrets(receipt, "receipt")
    text = f"{HEADER}\n{canonical_json(dict(receipt)).decode()}\n"
    return {
        "note": sign_note(text, [signer]),
        "receipt": dict(receipt),
        "signer": signer.verifier().vkey(),
    }


def verify_receipt(
    payload: Mapping[str, Any], trusted: Sequence[Ed25519Verifier]
) -> dict[str, Any]:
    """Check a provider_receipt payload against trusted provider keys; returns the receipt."""
    note, _ = open_note(str(payload.get("note", "")), trusted)
    header, _, body = note.text.partition("\n")
    if header != HEADER:
        raise NoteError(f"receipt note starts with {header!r}, expected {HEADER!r}")
    signed = json.loads(body)
    if signed != payload.get("receipt"):
        raise NoteError("payload.receipt differs from the signed receipt")
    return signed
