from __future__ import annotations

import pytest

from skyshard.ledger import Ledger
from skyshard.ledger.ed25519 import SigningKey
from skyshard.ledger.note import Ed25519Signer

ORIGIN = "test.skyshard/ledger"


def make_signer(seed_byte: int = 1, name: str = ORIGIN) -> Ed25519Signer:
    return Ed25519Signer(name, SigningKey(bytes([seed_byte]) * 32))


@pytest.fixture
def signer() -> Ed25519Signer:
    return make_signer()


@pytest.fixture
def ledger(tmp_path, signer) -> Ledger:
    return Ledger.open(tmp_path / "ledger", signer)


def fill(ledger: Ledger, count: int) -> None:
    ledger.append_many(
        [("run_started", f"run-{i}", "broker", {"i": i, "note": "héllo"}) for i in range(count)]
    )
