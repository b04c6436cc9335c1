"""`db.transaction`: the block's writes are committed together, or none of them."""

from __future__ import annotations

import pytest

from skyshard import db


def test_a_transaction_commits_when_the_block_ends(tmp_path):
    path = tmp_path / "t.duckdb"
    with db.connect(path) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
        with db.transaction(con):
            con.execute("INSERT INTO t VALUES (1), (2)")
    with db.connect(path, read_only=True) as con:
        assert db.scalar(con, "SELECT sum(x) FROM t") == 3


def test_a_transaction_rolls_back_when_the_block_raises(tmp_path):
    path = tmp_path / "t.duckdb"
    with db.connect(path) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
        with pytest.raises(ValueError, match="stop"), db.transaction(con):
            con.execute("INSERT INTO t VALUES (1)")
            raise ValueError("stop")
        con.execute("INSERT INTO t VALUES (5)")
    with db.connect(path, read_only=True) as con:
        assert db.scalar(con, "SELECT sum(x) FROM t") == 5
