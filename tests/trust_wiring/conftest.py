"""A ledger with a fixed key, entries at chosen times, and a sky whose policy names an auditor."""

from __future__ import annotations

import base64
import shutil
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from skyshard.ledger import Entry, Ledger
from skyshard.ledger.ed25519 import SigningKey
from skyshard.ledger.entry import make_entry, utc_timestamp
from skyshard.ledger.note import Ed25519Signer

ROOT = Path(__file__).resolve().parents[2]
AUDITOR_KEY = SigningKey(bytes([7]) * 32)
AUDITOR_ID = "acme-audit"
SIGNER = Ed25519Signer("test.skyshard/ledger", SigningKey(bytes([1]) * 32))


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger.open(tmp_path / "ledger", SIGNER)


class EntryMaker:
    """Signed entries with explicit timestamps, for the pure score/settlement functions."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def __call__(self, type: str, at: datetime, **payload) -> Entry:
        entry = make_entry(len(self.entries), type, "", "test", payload, SIGNER, utc_timestamp(at))
        self.entries.append(entry)
        return entry


@pytest.fixture
def make() -> EntryMaker:
    return EntryMaker()


@pytest.fixture
def sky_home(tmp_path, monkeypatch) -> Path:
    """The example config with an auditor in policy.yaml; SKYSHARD_HOME points at it."""
    home = tmp_path / "sky"
    shutil.copytree(ROOT / "config", home)
    policy_path = home / "policy.yaml"
    policy = yaml.safe_load(policy_path.read_text())
    public = base64.b64encode(AUDITOR_KEY.public_key).decode()
    policy["auditors"] = [{"id": AUDITOR_ID, "public_key": public}]
    policy_path.write_text(yaml.safe_dump(policy))
    monkeypatch.setenv("SKYSHARD_HOME", str(home))
    return home
