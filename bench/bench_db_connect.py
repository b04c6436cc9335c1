"""CPU and wall time of one short write transaction through `skyshard.db.connect`, against
opening the file as its own DuckDB instance (what `connect` did before files were attached to
one instance per process).

Usage: .venv/bin/python -m bench.bench_db_connect [TRANSACTIONS]   (default 200)"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from skyshard import db


def per_transaction(label: str, count: int, run: Callable[[], None]) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        run()
    cpu_ms = (time.process_time() - cpu) / count * 1e3
    wall_ms = (time.perf_counter() - wall) / count * 1e3
    print(f"| {label} | {cpu_ms:.1f} | {wall_ms:.1f} |")


def main(count: int) -> None:
    database = Path(tempfile.mkdtemp(prefix="bench_db_")) / "skyshard.duckdb"
    with db.connect(database) as con:
        con.execute("CREATE SCHEMA ops; CREATE TABLE ops.steps (n INTEGER)")

    def own_instance() -> None:
        con = duckdb.connect(str(database))
        with db.transaction(con):
            con.execute("INSERT INTO ops.steps VALUES (1)")
        con.close()

    def attached() -> None:
        with db.connect(database) as con, db.transaction(con):
            con.execute("INSERT INTO ops.steps VALUES (1)")

    print(f"{count} one-row transactions on {database}\n")
    print("| open per transaction | CPU ms | wall ms |\n|---|---:|---:|")
    per_transaction("a DuckDB instance of its own (`duckdb.connect(file)`)", count, own_instance)
    per_transaction("attached to the process's instance (`db.connect`)", count, attached)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
