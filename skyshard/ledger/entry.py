"""Ledger entries: the canonical JSON line that is both the signed message and the Merkle leaf.

Canonical JSON here means: an object with sorted keys, separators `,` and `:` (no other
whitespace), UTF-8 output with non-ASCII characters written as themselves, and no NaN or
Infinity. The signature is Ed25519 over the canonical JSON of the entry without `sig`.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from skyshard.ledger.note import Ed25519Signer, NoteError, strict_b64decode

FIELDS = ("actor", "key_id", "payload", "run_id", "seq", "sig", "ts", "type")
_FIELD_SET = frozenset(FIELDS)
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
_KEY_ID = re.compile(r"[0-9a-f]{8}")
_SECRET_WORDS = {"password", "passwd", "passphrase", "secret", "credential", "credentials"}
_SECRET_JOINED = ("privatekey", "apikey", "secretkey", "accesstoken", "clientsecret")
_PEM_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


KEY_ROTATION = "key_rotation"
"""The one entry type the log itself interprets: it announces the next signing key."""
_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class EntryError(ValueError):
    """An entry is malformed, not canonical, or would carry a secret."""


def canonical_json(value: Any) -> bytes:
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as exc:
        raise EntryError(f"not canonical JSON (NaN and Infinity are refused): {exc}") from exc
    return text.encode("utf-8")


def utc_timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 UTC with microseconds, e.g. 2026-11-28T12:00:00.000000Z."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@functools.lru_cache(maxsize=4096)
def _looks_secret(key: str) -> bool:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key)
    words = [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]
    joined = "".join(words)
    return bool(
        _SECRET_WORDS.intersection(words)
        or any(s in joined for s in _SECRET_JOINED)
        or (words and words[-1] == "token")
    )


def check_no_secrets(payload: Any, path: str = "payload") -> None:
    """Refuse payloads whose keys or values look like secrets: they must never be logged."""
    if isinstance(payload, Mapping):
        for key, value in payload.items():
            field = f"{path}.{key}"
            if _looks_secret(str(key)):
                raise EntryError(
                    f"{field} looks like a secret; secrets never go into the ledger "
                    "(keep them in environment variables or key files)"
                )
            check_no_secrets(value, field)
    elif isinstance(payload, list | tuple):
        for index, item in enumerate(payload):
            check_no_secrets(item, f"{path}[{index}]")
    elif isinstance(payload, str) and _PEM_PRIVATE_KEY.search(payload):
        raise EntryError(f"{path} contains a PEM private key; it never goes into the ledger")


@dataclass(frozen=True)
class Entry:
    seq: int
    type: str
    run_id: str
    ts: str
    actor: str
    payload: dict[str, Any]
    key_id: str
    sig: str
    line: bytes

    @property
    def signature(self) -> bytes:
        return base64.b64decode(self.sig)

    def signed_message(self) -> bytes:
        """The canonical JSON of this entry without `sig`: what the key signed."""
        return message_of_line(self.line, self.sig)


def message_of_line(line: bytes, sig: str) -> bytes:
    """Cut the `"sig"` member out of a canonical entry line. Keys are sorted, so it sits right
    before `"ts"` (whose value cannot contain quotes): no re-serialising needed."""
    member = b',"sig":"' + sig.encode() + b'"'
    position = line.rfind(member + b',"ts":"')
    return line[:position] + line[position + len(member) :]


def signed_message(value: Mapping[str, Any]) -> bytes:
    """Canonical JSON of an entry's fields without `sig`."""
    return canonical_json({k: v for k, v in value.items() if k != "sig"})


def make_entry(
    seq: int,
    type: str,
    run_id: str,
    actor: str,
    payload: Mapping[str, Any],
    signer: Ed25519Signer,
    ts: str | None = None,
) -> Entry:
    """Build, validate and sign a new entry."""
    unsigned = {
        "actor": actor,
        "key_id": signer.key_id.hex(),
        "payload": dict(payload),
        "run_id": run_id,
        "seq": seq,
        "ts": ts or utc_timestamp(),
        "type": _entry_type(type, "type"),
    }
    _check_fields(unsigned)
    check_no_secrets(unsigned["payload"])
    message = signed_message(unsigned)
    sig = base64.b64encode(signer.sign(message)).decode()
    # Keys are sorted, so the line is the message with `"sig"` inserted right before `"ts"`.
    cut = message.rfind(b',"ts":"')
    line = message[:cut] + b',"sig":"' + sig.encode() + b'"' + message[cut:]
    return _entry(unsigned | {"sig": sig}, line)


def parse_line(line: bytes) -> Entry:
    """Parse one log line (without newline), insisting it is a well-formed canonical entry."""
    return _entry(check_line(line), line)


def check_line(line: bytes) -> dict[str, Any]:
    """The fields of a well-formed canonical entry line, or EntryError saying what is wrong."""
    value = _canonical_without_floats(line)
    canonical = value is not None
    if not canonical:
        try:
            value = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EntryError(f"line is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise EntryError("line is not a JSON object")
    if value.keys() != _FIELD_SET:
        raise EntryError(f"entry fields are {sorted(value)}, expected {list(FIELDS)}")
    _check_fields(value)
    if not _is_signature(value["sig"]):
        raise EntryError(f"sig {value['sig']!r} is not a base64 Ed25519 signature")
    if not canonical and canonical_json(value) != line:
        raise EntryError("line is not in canonical JSON form")
    return value


def _canonical_without_floats(line: bytes) -> Any:
    """The value of `line` if it is canonical JSON without floats, found with orjson (about
    3 times faster than json); None leaves the decision to json: orjson writes floats
    differently, reads integers beyond 64 bits as floats and refuses some input json takes.
    Without floats, orjson with sorted keys writes exactly what canonical_json writes."""
    try:
        value = orjson.loads(line)
        if _has_float(value) or orjson.dumps(value, option=orjson.OPT_SORT_KEYS) != line:
            return None
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    return value


def _has_float(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return isinstance(value, float)


def _entry(value: dict[str, Any], line: bytes) -> Entry:
    return Entry(
        seq=value["seq"],
        type=value["type"],
        run_id=value["run_id"],
        ts=value["ts"],
        actor=value["actor"],
        payload=value["payload"],
        key_id=value["key_id"],
        sig=value["sig"],
        line=line,
    )


def _is_signature(sig: Any) -> bool:
    """Canonical base64 of 64 bytes only: a re-encoded signature would change the leaf hash
    while still verifying."""
    if not isinstance(sig, str) or len(sig) != 88:
        return False
    try:
        return len(strict_b64decode(sig, "sig")) == 64
    except NoteError:
        return False


def _entry_type(value: Any, field: str) -> str:
    if isinstance(value, str) and _TYPE.fullmatch(value):
        return str(value)
    raise EntryError(f"{field} {value!r} is not a lowercase identifier ([a-z][a-z0-9_]*, <= 64)")


def _check_fields(value: Mapping[str, Any]) -> None:
    seq = value["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise EntryError(f"seq {seq!r} is not a non-negative integer")
    _entry_type(value["type"], "type")
    for field in ("run_id", "actor"):
        if not isinstance(value[field], str):
            raise EntryError(f"{field} {value[field]!r} is not a string")
    if not value["actor"]:
        raise EntryError("actor must not be empty")
    if not isinstance(value["ts"], str) or not _TIMESTAMP.fullmatch(value["ts"]):
        raise EntryError(f"ts {value['ts']!r} is not an RFC 3339 UTC timestamp ending in Z")
    if not isinstance(value["payload"], dict):
        raise EntryError(f"payload {value['payload']!r} is not a JSON object")
    if not isinstance(value["key_id"], str) or not _KEY_ID.fullmatch(value["key_id"]):
        raise EntryError(f"key_id {value['key_id']!r} is not 8 lowercase hex digits")
