"""Signed audit attestations: the file format, a signing helper for auditors, and the check
against the auditor keys in `policy.yaml` before an attestation enters the ledger.

An attestation is a JSON object:
  {"format": "skyshard-audit/v1", "auditor": ID, "provider": ID,
   "period": {"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}, "score": 0..1,
   "findings": [...], "signature": base64 Ed25519}
signed over the canonical JSON (docs/ledger.md) of the object without `signature`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from skyshard.config.policy import Auditor
from skyshard.ledger import Entry, Ledger, ed25519
from skyshard.ledger.ed25519 import SigningKey
from skyshard.ledger.entry import EntryError, canonical_json, check_no_secrets
from skyshard.ledger.note import NoteError, strict_b64decode
from skyshard.trust.events import EntryType, record_audit

FORMAT = "skyshard-audit/v1"
FIELDS = ("auditor", "findings", "format", "period", "provider", "score", "signature")


class AuditError(ValueError):
    """An attestation file that must not enter the ledger; the message names file and field."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source, self.field = source, field
        super().__init__(f"{source}: {field}: {problem}")


def signed_bytes(attestation: Mapping[str, Any]) -> bytes:
    """What the auditor signs: the canonical JSON of the attestation without `signature`."""
    return canonical_json({k: v for k, v in attestation.items() if k != "signature"})


def sign_attestation(attestation: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """For auditors: the attestation with `format` set and its `signature` added."""
    body = {k: v for k, v in attestation.items() if k != "signature"} | {"format": FORMAT}
    signature = base64.b64encode(key.sign(signed_bytes(body))).decode()
    return body | {"signature": signature}


def _check_date(source: str, value: Any, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise AuditError(source, field, f"{value!r} is not a YYYY-MM-DD date") from None


def _check_shape(source: str, doc: Any, providers: Iterable[str] | None) -> None:
    if not isinstance(doc, dict):
        raise AuditError(source, "(top level)", "expected a JSON object")
    missing = [f for f in FIELDS if f not in doc]
    if missing:
        raise AuditError(source, missing[0], "missing")
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise AuditError(source, unknown[0], f"unknown field; expected only {list(FIELDS)}")
    if doc["format"] != FORMAT:
        raise AuditError(source, "format", f"{doc['format']!r} is not {FORMAT!r}")
    for field in ("auditor", "provider"):
        if not isinstance(doc[field], str) or not doc[field]:
            raise AuditError(source, field, f"{doc[field]!r} is not a non-empty string")
    known = sorted(providers) if providers is not None else None
    if known is not None and doc["provider"] not in known:
        raise AuditError(source, "provider", f"{doc['provider']!r} is not one of {known}")
    period = doc["period"]
    if not isinstance(period, dict) or set(period) != {"start", "end"}:
        raise AuditError(source, "period", f"{period!r} is not {{'start': …, 'end': …}}")
    start = _check_date(source, period["start"], "period.start")
    end = _check_date(source, period["end"], "period.end")
    if end < start:
        raise AuditError(source, "period.end", f"{period['end']} is before {period['start']}")
    score = doc["score"]
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise AuditError(source, "score", f"{score!r} is not a number in [0, 1]")
    if not isinstance(doc["findings"], list):
        raise AuditError(source, "findings", "expected a list")
    try:
        check_no_secrets({k: v for k, v in doc.items() if k != "signature"}, "attestation")
    except EntryError as exc:
        raise AuditError(source, "findings", str(exc)) from None


def _public_key(auditor: Auditor) -> bytes:
    try:
        key = strict_b64decode(auditor.public_key, "public_key")
    except NoteError:
        key = b""
    if len(key) != ed25519.PUBLIC_KEY_SIZE:
        raise AuditError(
            "policy.yaml",
            f"auditors[{auditor.id}].public_key",
            "not the base64 of a 32-byte Ed25519 public key",
        )
    return key


def verify_attestation(
    doc: Any,
    auditors: Iterable[Auditor],
    source: str = "attestation",
    providers: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The attestation, if well formed and signed by the key of its auditor in the policy."""
    _check_shape(source, doc, providers)
    by_id = {a.id: a for a in auditors}
    auditor = by_id.get(doc["auditor"])
    if auditor is None:
        raise AuditError(
            source, "auditor", f"{doc['auditor']!r} is not in policy.yaml auditors {sorted(by_id)}"
        )
    try:
        signature = strict_b64decode(doc["signature"], "signature")
    except (NoteError, TypeError):
        signature = b""
    if not ed25519.verify(_public_key(auditor), signed_bytes(doc), signature):
        raise AuditError(
            source, "signature", f"not a valid Ed25519 signature by auditor {auditor.id}'s key"
        )
    return doc


def load_attestation(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise AuditError(str(path), "(file)", f"cannot read: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuditError(str(path), "(file)", f"not valid JSON: {exc}") from None


def import_attestation(
    ledger: Ledger,
    path: Path,
    auditors: Iterable[Auditor],
    providers: Iterable[str] | None = None,
) -> Entry:
    """Verify the attestation in `path` and append it as an audit_attestation entry; an
    attestation already in the ledger (same signature) is refused."""
    doc = verify_attestation(load_attestation(path), auditors, str(path), providers)
    signature = base64.b64decode(doc["signature"])
    for entry in ledger.verified_entries(EntryType.AUDIT_ATTESTATION):
        if base64.b64decode(entry.payload.get("signature", "")) == signature:
            raise AuditError(str(path), "signature", f"already imported as entry {entry.seq}")
    return record_audit(ledger, doc)
