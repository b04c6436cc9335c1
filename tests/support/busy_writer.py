"""A writer process that keeps the DuckDB file busy (tests, benches): in a loop, one
transaction adds a batch to two analytics tables while holding the file for `HOLD_S` (like a
dbt model or an ingestion), then a migration state write on the configured state backend, then
publishes a read snapshot as a Dagster step does at its end. Run as
`python -m tests.support.busy_writer DB SECONDS HOLD_S`; prints the batches written.
"""

from __future__ import annotations

import sys
import time

from skyshard import db
from skyshard.broker.ops_tables import OpsStore
from skyshard.storage.snapshots import publish

MOVE = "mv-00000000000000ff"


def prepare(database: str) -> None:
    """The tables the loop writes, and the move whose steps it records."""
    with db.connect(database) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS load")
        con.execute("CREATE TABLE IF NOT EXISTS load.a (batch INTEGER, written_at TIMESTAMP)")
        con.execute("CREATE TABLE IF NOT EXISTS load.b (batch INTEGER, written_at TIMESTAMP)")
    OpsStore(database).create_migration(MOVE, "kv-busy", "host-a", "host-b")


def write_for(database: str, seconds: float, hold_s: float) -> int:
    ops = OpsStore(database)
    deadline = time.monotonic() + seconds
    batches = 0
    while time.monotonic() < deadline:
        batches += 1
        with db.connect(database) as con, db.transaction(con):
            # Both tables in one transaction: a consistent snapshot has equal counts.
            con.execute("INSERT INTO load.a SELECT ?, now() FROM range(100)", [batches])
            time.sleep(hold_s)
            con.execute("INSERT INTO load.b SELECT ?, now() FROM range(100)", [batches])
        ops.record_step(MOVE, "precopy", {"round": batches}, rounds=batches)
        publish(database, wait_s=0, only_if_changed=True)
    return batches


if __name__ == "__main__":
    print(write_for(sys.argv[1], float(sys.argv[2]), float(sys.argv[3])))
