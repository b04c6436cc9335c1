"""Ledger entries: canonical JSON, strict parsing, signatures and the secret filter."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyshard.ledger import entry as entry_module
from skyshard.ledger.ed25519 import verify
from skyshard.ledger.entry import (
    EntryError,
    canonical_json,
    check_no_secrets,
    make_entry,
    parse_line,
    signed_message,
)

from .conftest import make_signer


def test_entry_line_is_canonical_and_signed():
    signer = make_signer()
    entry = make_entry(
        7,
        "migration_step",
        "run-1",
        "broker",
        {"b": 1, "a": "ü"},
        signer,
        ts="2026-11-28T10:00:00.000000Z",
    )
    text = entry.line.decode()
    assert text.startswith('{"actor":"broker","key_id":"')
    assert '"payload":{"a":"ü","b":1}' in text
    assert " " not in text
    assert parse_line(entry.line) == entry
    message = signed_message(json.loads(entry.line))
    assert entry.signed_message() == message
    assert verify(signer.key.public_key, message, entry.signature)


@settings(max_examples=40, deadline=None)
@given(
    payload=st.dictionaries(
        st.text(alphabet="abcdefgh_", min_size=1, max_size=6),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3),
            max_leaves=5,
        ),
        max_size=4,
    ),
    run_id=st.text(max_size=12),
)
def test_cut_out_signed_message_equals_canonical_json_without_sig(payload, run_id):
    entry = make_entry(3, "run_started", run_id, "broker", payload, make_signer())
    assert entry.signed_message() == canonical_json(
        {k: v for k, v in json.loads(entry.line).items() if k != "sig"}
    )
    assert parse_line(entry.line) == entry


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": "x"}, "payload.password"),
        ({"db": {"Password": "x"}}, "payload.db.Password"),
        ({"authToken": "x"}, "payload.authToken"),
        ({"access_token": "x"}, "payload.access_token"),
        ({"privateKey": "x"}, "payload.privateKey"),
        ({"ssh_private_key": "x"}, "payload.ssh_private_key"),
        ({"hosts": [{"api_key": "x"}]}, "payload.hosts\\[0\\].api_key"),
        ({"client_secret": "x"}, "payload.client_secret"),
        ({"blob": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc"}, "payload.blob"),
    ],
)
def test_secret_looking_payloads_are_refused_naming_the_field(payload, field):
    with pytest.raises(EntryError, match=f"{field} .*secret|{field} contains a PEM"):
        make_entry(0, "run_started", "r", "broker", payload, make_signer())


def test_ordinary_payload_keys_pass_the_secret_filter():
    check_no_secrets({"tokens_used": 3, "token_count": 1, "key_id": "ab", "public_key": "x"})


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"type": "Run Exploded"}, "type 'Run Exploded' is not a lowercase identifier"),
        ({"seq": -1}, "seq -1 is not a non-negative integer"),
        ({"actor": ""}, "actor must not be empty"),
        ({"ts": "2026-11-28 10:00:00"}, "ts '2026-11-28 10:00:00' is not an RFC 3339"),
        ({"payload": {"x": float("nan")}}, "NaN"),
    ],
)
def test_invalid_fields_are_refused(kwargs, error):
    args = {"seq": 0, "type": "run_started", "run_id": "r", "actor": "a", "payload": {}}
    args |= kwargs
    with pytest.raises(EntryError, match=error):
        make_entry(signer=make_signer(), **args)


def test_parse_line_refuses_non_canonical_or_incomplete_lines():
    entry = make_entry(0, "run_started", "r", "broker", {"a": 1}, make_signer())
    value = json.loads(entry.line)
    spaced = json.dumps(value, sort_keys=True).encode()
    with pytest.raises(EntryError, match="not in canonical JSON form"):
        parse_line(spaced)
    unsorted = json.dumps(dict(reversed(value.items())), separators=(",", ":")).encode()
    with pytest.raises(EntryError, match="not in canonical JSON form"):
        parse_line(unsorted)
    with pytest.raises(EntryError, match="fields are"):
        parse_line(canonical_json({k: v for k, v in value.items() if k != "actor"}))
    with pytest.raises(EntryError, match="not valid JSON"):
        parse_line(entry.line[:-5])
    with pytest.raises(EntryError, match="not a JSON object"):
        parse_line(b"[1,2]")
    for bad_sig in ("short", "!" * 86 + "==", "A" * 87 + "="):
        with pytest.raises(EntryError, match="is not a base64 Ed25519 signature"):
            parse_line(canonical_json(value | {"sig": bad_sig}))


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES)
def test_the_orjson_shortcut_accepts_exactly_canonical_json(value):
    """The fast path (orjson) may leave a line to json, but never accepts one json would
    not: any text, integers beyond 64 bits, floats, keys sorted by code point."""
    line = canonical_json(value)
    assert entry_module._canonical_without_floats(line) in (None, value)
    try:
        other = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return
    found = entry_module._canonical_without_floats(other)
    assert found is None or canonical_json(found) == other


def test_entries_with_floats_and_big_integers_take_the_exact_path():
    signer = make_signer()
    for payload in ({"score": 0.6236, "big": 1e16}, {"n": -(2**63) - 1}, {"n": 2**70}):
        entry = make_entry(0, "trust_score", "r", "broker", payload, signer)
        assert parse_line(entry.line).payload == payload
    forged = entry.line.replace(b"1180591620717411303424", b"1180591620717411303424.0")
    with pytest.raises(EntryError, match="not in canonical JSON form"):
        parse_line(forged)
