"""Short-lived DuckDB connections, transactions, and small table helpers every package uses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

LOCK_WAIT_S = 30.0
"""How long to wait for another process's write lock: its transactions are short."""


@contextmanager
def connect(
    path: Path | str, *, read_only: bool = False, wait_s: float = LOCK_WAIT_S
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the DuckDB file for one short unit of work, waiting up to `wait_s` for a lock
    another process holds (DuckDB allows one writer process; see DESIGN.md)."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = _open_waiting(path, read_only, wait_s)
    try:
        yield con
    finally:
        con.close()


def _open_waiting(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    pause = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: committed when it ends, rolled back if it raises."""
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()


def replace_table(con: duckdb.DuckDBPyConnection, qualified_name: str, frame: pl.DataFrame) -> int:
    """Replace a whole table with `frame` (used for config-derived tables)."""
    schema = qualified_name.split(".")[0]
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.register("_replacement", frame.to_arrow())
    try:
        con.execute(f"CREATE OR REPLACE TABLE {qualified_name} AS SELECT * FROM _replacement")
    finally:
        con.unregister("_replacement")
    return frame.height


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> object:
    """The single value a query returns (DuckDB 2 wants every result fetched to the end)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def table_counts(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, int]:
    names = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1",
        [schema],
    ).fetchall()
    return {name: scalar(con, f'SELECT count(*) FROM {schema}."{name}"') for (name,) in names}
