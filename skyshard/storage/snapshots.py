"""Read snapshots: readers (`skyshard sql`, notebooks) query a published copy of the DuckDB
file and never wait for, or block, a writer.

DuckDB 2.0 lets no other process open a file while one holds it for writing, not even
read-only. So after a write, a snapshot is published: under the file's writer lock, CHECKPOINT
(the WAL is folded in), copy the file to `<db>.read/<time>.duckdb` while DuckDB's own lock keeps
every other process out, then atomically repoint `<db>.read/current`. The last `KEEP` snapshots
are kept, so a reader that just resolved `current` still finds its file. Each copy is one
consistent point in time (one checkpoint); its age is shown to readers.

When the operational state lives in Postgres (`StateMirror`), a reader gets it fresh at read
time: an in-memory database with the snapshot attached read-only (every table and view of it
visible under its usual name), and the `ops` tables fetched from Postgres in one transaction.

Who publishes (`refresh`: only when the snapshot is over `REFRESH_S` old, the file changed
since, and no writer holds the file right then): every write through the Dagster DuckDB
resource, when its connection closes (`DuckDBFile.connect`), and every reader. A reader never
waits for a writer unless no snapshot exists yet.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from skyshard import db
from skyshard.storage.state import StateStore

KEEP = 2
CURRENT = "current"
REFRESH_S = 1.0
"""A changed file is republished only when the snapshot is older than this, so a loop of
readers or of short writes does not turn into a loop of copies competing with the writers."""


class SnapshotUnavailable(RuntimeError):
    """No read snapshot exists and none could be published in time."""


@dataclass(frozen=True)
class StateMirror:
    """Operational-state tables that live outside the DuckDB file (Postgres), shown to readers
    beside the snapshot's analytics, created with the same DDL; and `views` (CREATE VIEW
    statements, in order) that join the two, which the file itself cannot hold."""

    state: StateStore
    ddl: Sequence[str]
    tables: Sequence[str]
    views: Sequence[str] = ()


@dataclass(frozen=True)
class Snapshot:
    path: Path
    published_at: datetime

    def age_s(self, at: datetime | None = None) -> float:
        return ((at or datetime.now(UTC)) - self.published_at).total_seconds()


def snapshot_dir(database: Path | str) -> Path:
    database = Path(database)
    return database.with_name(database.name + ".read")


def current_snapshot(database: Path | str) -> Snapshot | None:
    """The snapshot `current` points at, or None before the first publish."""
    link = snapshot_dir(database) / CURRENT
    try:
        target = link.parent / os.readlink(link)
    except FileNotFoundError:
        return None
    micros = int(target.name.split("-", 1)[0])
    return Snapshot(target, datetime.fromtimestamp(micros / 1e6, UTC))


def _changed_since(database: Path, snapshot: Snapshot | None) -> bool:
    if snapshot is None:
        return True
    wal = database.with_name(database.name + ".wal")
    changed = max(p.stat().st_mtime for p in (database, wal) if p.exists())
    return changed >= snapshot.published_at.timestamp()


def publish(
    database: Path | str, *, wait_s: float = db.LOCK_WAIT_S, only_if_changed: bool = False
) -> Snapshot | None:
    """Publish a snapshot of the DuckDB file `database` and point `current` at it. None when
    `wait_s` passed while a writer held the file, or when `only_if_changed` and the file did not
    change since the current one."""
    database = Path(database)
    if not database.exists():
        return None
    folder = snapshot_dir(database)
    folder.mkdir(exist_ok=True)
    try:
        with db.writer_lock(database, wait_s):
            if only_if_changed and not _changed_since(database, current_snapshot(database)):
                return None
            staging = folder / f"staging-{os.getpid()}-{threading.get_ident()}.tmp"
            with db.connect(database, wait_s=wait_s) as con:
                con.execute("CHECKPOINT")
                # DuckDB's own lock, held by this connection, keeps out dbt and other tools.
                shutil.copyfile(database, staging)
            # After the checkpoint and close wrote the file: later changes are someone else's.
            published_at = datetime.now(UTC)
    except (db.WriterLockTimeout, duckdb.IOException) as error:
        if isinstance(error, duckdb.IOException) and "lock" not in str(error).lower():
            raise
        return None
    final = folder / f"{int(published_at.timestamp() * 1e6)}-{os.getpid()}.duckdb"
    os.replace(staging, final)
    pointer = folder / f"{CURRENT}.{os.getpid()}.tmp"
    pointer.unlink(missing_ok=True)
    pointer.symlink_to(final.name)
    os.replace(pointer, folder / CURRENT)
    _prune(folder)
    return Snapshot(final, published_at)


def _open_with_mirror(snapshot: Path, mirror: StateMirror) -> duckdb.DuckDBPyConnection:
    """An in-memory database showing the snapshot's tables and views under their own names
    (the file's own copy of the mirrored schemas hidden) and the mirror's tables, fetched now."""
    fetched = mirror.state.transact(
        lambda con: {table: con.rows(f"SELECT * FROM {table}") for table in mirror.tables}
    )
    mirrored = {table.split(".")[0] for table in mirror.tables}
    con = duckdb.connect()
    con.execute("ATTACH ? AS snapshot (READ_ONLY)", [str(snapshot)])
    relations = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'snapshot' "
        "UNION ALL SELECT schema_name, view_name FROM duckdb_views() "
        "WHERE database_name = 'snapshot' AND NOT internal"
    ).fetchall()
    for schema, name in relations:
        if schema in mirrored:
            continue
        con.execute(f'CREATE SCHEMA IF NOT EXISTS memory."{schema}"')
        con.execute(
            f'CREATE VIEW memory."{schema}"."{name}" AS SELECT * FROM snapshot."{schema}"."{name}"'
        )
    for statement in mirror.ddl:
        con.execute(statement)
    for table, rows in fetched.items():
        if rows:
            columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
            frame = pl.DataFrame(rows, schema=columns, orient="row", infer_schema_length=None)
            con.register("_mirrored", frame.to_arrow())
            con.execute(f"INSERT INTO {table} SELECT * FROM _mirrored")
            con.unregister("_mirrored")
    for view in mirror.views:
        try:
            con.execute(view)
        except duckdb.CatalogException:
            break  # the snapshot predates the tables it joins (no planning run yet)
    return con


def _prune(folder: Path) -> None:
    published = sorted(folder.glob("*.duckdb"), key=lambda p: int(p.name.split("-", 1)[0]))
    for old in published[:-KEEP]:
        old.unlink(missing_ok=True)
    # Staging files of a publisher that died mid-copy.
    for stale in folder.glob("staging-*.tmp"):
        if time.time() - stale.stat().st_mtime > 3600:
            stale.unlink(missing_ok=True)


def refresh(database: Path | str) -> Snapshot | None:
    """The current snapshot, republished first if it is over `REFRESH_S` old, the file changed
    since, and no writer holds the file at this moment (never waits). None before the first."""
    snapshot = current_snapshot(database)
    if snapshot is None or snapshot.age_s() > REFRESH_S:
        snapshot = publish(database, wait_s=0, only_if_changed=True) or snapshot
    return snapshot


@contextmanager
def read_snapshot(
    database: Path | str, mirror: StateMirror | None = None, *, first_wait_s: float = 120.0
) -> Iterator[tuple[duckdb.DuckDBPyConnection, Snapshot]]:
    """A read-only view of the freshest snapshot there is (with `mirror`'s tables fetched now),
    and which snapshot it is.

    Refreshes first when the current snapshot is over `REFRESH_S` old, the file changed
    since, and no writer holds the file at this moment; otherwise reads the current one. Waits
    (up to `first_wait_s`) only when there is no snapshot at all yet."""
    database = Path(database)
    if not database.exists():
        raise SnapshotUnavailable(
            f"no DuckDB file at {database} (SKYSHARD_DUCKDB); run a job first"
        )
    snapshot = refresh(database) or publish(database, wait_s=first_wait_s)
    if snapshot is None:
        raise SnapshotUnavailable(
            f"no read snapshot of {database} yet, and a writer held the file for "
            f"{first_wait_s:g} s; try again when the run ends"
        )
    con, snapshot = _open_resolved(database, snapshot, mirror)
    try:
        yield con, snapshot
    finally:
        con.close()


@contextmanager
def read_current(database: Path | str) -> Iterator[tuple[duckdb.DuckDBPyConnection, Snapshot]]:
    """The current snapshot as it is, read-only: never publishes, so the DuckDB file is neither
    opened nor locked, and need not be on this machine; only its snapshot folder
    (`<database>.read`, mounted at the same path) must be."""
    snapshot = current_snapshot(database)
    if snapshot is None:
        raise SnapshotUnavailable(
            f"no read snapshot at {snapshot_dir(database) / CURRENT} (SKYSHARD_DUCKDB="
            f"{database}): publish one on the DuckDB file's machine (a write or a read there "
            "does), and mount that folder at the same path on this one"
        )
    con, snapshot = _open_resolved(database, snapshot, None)
    try:
        yield con, snapshot
    finally:
        con.close()


def _open_resolved(
    database: Path | str, snapshot: Snapshot, mirror: StateMirror | None
) -> tuple[duckdb.DuckDBPyConnection, Snapshot]:
    try:
        return _open(snapshot.path, mirror), snapshot
    except duckdb.IOException:
        # Pruned between resolving `current` and opening it (two publishes meanwhile).
        snapshot = current_snapshot(database) or snapshot
        return _open(snapshot.path, mirror), snapshot


def _open(snapshot: Path, mirror: StateMirror | None) -> duckdb.DuckDBPyConnection:
    if mirror is None:
        return duckdb.connect(str(snapshot), read_only=True)
    return _open_with_mirror(snapshot, mirror)
