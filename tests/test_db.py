"""`db.connect` and `db.transaction`: files attached per unit of work, shared by threads and free
for other processes between units; a transaction's writes are committed together, or none."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import duckdb
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


def test_the_file_is_free_for_other_processes_between_units_of_work(tmp_path):
    database = tmp_path / "skyshard.duckdb"
    with db.connect(database) as con:
        con.execute("CREATE TABLE t (n INTEGER)")
    other = subprocess.run(
        [sys.executable, "-c", WRITE_ONE_ROW, str(database)], capture_output=True, text=True
    )
    assert other.returncode == 0, other.stderr
    with db.connect(database, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (1,)


WRITE_ONE_ROW = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("INSERT INTO t VALUES (1)")
con.close()
"""


def test_a_unit_of_work_joins_a_file_this_process_opened_itself(tmp_path):
    database = tmp_path / "skyshard.duckdb"
    with duckdb.connect(str(database)) as own:
        own.execute("CREATE TABLE t (n INTEGER)")
        with db.connect(database) as con, db.transaction(con):
            con.execute("INSERT INTO t VALUES (1)")
        assert own.execute("SELECT count(*) FROM t").fetchone() == (1,)
    with db.connect(database) as con:  # and attaches it once the process has let it go
        assert con.execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_threads_share_one_attachment_and_see_one_file(tmp_path):
    first, second = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    for database in (first, second):
        with db.connect(database) as con:
            con.execute("CREATE TABLE t (n INTEGER)")

    def write(database, n: int) -> None:
        with db.connect(database) as con, db.transaction(con):
            con.execute("INSERT INTO t VALUES (?)", [n])
            tables = con.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_catalog = current_database()"
            ).fetchone()
            assert tables == (1,)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, [first, second] * 20, range(40)))
    for database, parity in ((first, 0), (second, 1)):
        with db.connect(database) as con:
            rows = [n for (n,) in con.execute("SELECT n FROM t").fetchall()]
        assert len(rows) == 20 and all(n % 2 == parity for n in rows)


def test_a_file_detached_under_an_open_transaction_is_attached_once_it_ends(tmp_path):
    # DuckDB keeps a detached file open while a transaction on another cursor that read every
    # attached database (information_schema) is open: attaching it again waits for that end
    first, second = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    for database in (first, second):
        with db.connect(database) as con:
            con.execute("CREATE TABLE t (n INTEGER)")
    opened = []

    def reopen() -> None:
        with db.connect(first) as con:
            opened.append(con.execute("SELECT count(*) FROM t").fetchone())

    with db.connect(second) as reader:
        with db.connect(first):
            reader.begin()
            reader.execute("SELECT count(*) FROM information_schema.tables").fetchall()
        # `first` is detached now, but still open under `reader`'s transaction
        worker = threading.Thread(target=reopen)
        worker.start()
        time.sleep(0.2)  # let the worker find the file still held
        reader.commit()
        worker.join(timeout=60)
    assert opened == [(0,)]
