"""The DuckDB mirror of the ledger."""

from __future__ import annotations

import duckdb

from skyshard.ledger import Ledger
from skyshard.ledger.merkle import leaf_hash
from skyshard.trust.mirror import mirror_ledger
from tests.ledger.conftest import fill


def test_mirror_is_idempotent_and_incremental(ledger, tmp_path):
    fill(ledger, 4)
    ledger.checkpoint()
    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    assert mirror_ledger(con, ledger) == (4, 1)
    assert mirror_ledger(con, ledger) == (0, 1)
    fill(ledger, 2)
    ledger.checkpoint()
    assert mirror_ledger(con, ledger) == (2, 2)
    rows = con.execute(
        "SELECT seq, type, payload->>'note', leaf_hash, line FROM ledger.entries ORDER BY seq"
    ).fetchall()
    assert [r[0] for r in rows] == list(range(6))
    assert rows[0][2] == "héllo"
    assert rows[5][3] == leaf_hash(rows[5][4].encode()).hex()
    checkpoints = con.execute(
        "SELECT size, signed_at IS NOT NULL, cosigners FROM ledger.checkpoints ORDER BY size"
    ).fetchall()
    assert checkpoints == [(4, True, []), (6, True, [])]


def test_mirror_of_an_empty_ledger(tmp_path, ledger):
    con = duckdb.connect()
    assert mirror_ledger(con, Ledger(tmp_path / "nothing", ledger.signer)) == (0, 0)
    assert con.execute("SELECT count(*) FROM ledger.entries").fetchone() == (0,)
