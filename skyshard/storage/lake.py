"""A shared lake directory (`SKYSHARD_LAKE_DIR`, on NFS or a shared volume) that partitions
write from any machine, and the DuckDB file (and so dbt) reads as views.

Layout: `<lake>/<schema>/<table>/<partition>.parquet`, one file per table and partition (for
telemetry: per feed). A partition's file holds all of that partition's rows and is replaced
whole: written beside its final name, flushed, then renamed over it (`os.replace`, atomic on
one file system, NFS included), so a reader sees the old file or the new one, never half of
one. A partition is merged in an in-memory DuckDB database holding only its own previous rows,
with the same SQL that merges into the shared file, so the two layouts keep the same rows.

Readers: `attach_lake` turns `<schema>.<table>` in the DuckDB file into a view over
`read_parquet('<lake>/<schema>/<table>/*.parquet')`; files written later are read by the same
view without recreating it (`read_lake`: the same views in an in-memory database, for a
machine without the DuckDB file; `partition_reader`: one partition's rows). The machine that
holds the DuckDB file (dbt, planning) needs the lake mounted at the same path as the writers.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

LAKE_DIR_ENV = "SKYSHARD_LAKE_DIR"
PARTITION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class LakeError(ValueError):
    """A lake path, partition or table that cannot be used (named in the message)."""


def lake_dir() -> Path | None:
    """The shared lake directory, or None (everything in the DuckDB file)."""
    value = os.environ.get(LAKE_DIR_ENV, "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_absolute():
        raise LakeError(f"{LAKE_DIR_ENV}={value!r}: expected an absolute path (every machine "
                        "mounts the lake at the same path)")  # fmt: skip
    return path


def table_dir(lake: Path, qualified: str) -> Path:
    schema, _, table = qualified.partition(".")
    if not (NAME.match(schema) and NAME.match(table)):
        raise LakeError(f"table {qualified!r}: expected schema.table in lower-case identifiers")
    return lake / schema / table


def partition_file(lake: Path, qualified: str, partition: str) -> Path:
    if not PARTITION.match(partition):
        raise LakeError(
            f"partition {partition!r} of {qualified}: expected letters, digits, _ . - "
            "(at most 128, not starting with . or -)"
        )
    return table_dir(lake, qualified) / f"{partition}.parquet"


def _files(lake: Path, qualified: str) -> list[Path]:
    folder = table_dir(lake, qualified)
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def _load(
    con: duckdb.DuckDBPyConnection, lake: Path, partition: str, tables: Sequence[str]
) -> None:
    for qualified in tables:
        current = partition_file(lake, qualified, partition)
        if not current.exists():
            continue
        try:
            con.execute(
                f"INSERT INTO {qualified} BY NAME SELECT * FROM read_parquet(?)", [str(current)]
            )
        except duckdb.Error as error:
            reason = str(error).splitlines()[0]
            raise LakeError(f"{current}: not a partition file of {qualified} ({reason})") from None


@contextmanager
def partition_reader(
    lake: Path,
    partition: str,
    tables: Sequence[str],
    create: Callable[[duckdb.DuckDBPyConnection], None],
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory database with `tables` (created by `create`) holding only `partition`'s
    current rows from the lake; nothing is written back."""
    con = duckdb.connect()
    try:
        create(con)
        _load(con, lake, partition, tables)
        yield con
    finally:
        con.close()


@contextmanager
def partition_writer(
    lake: Path,
    partition: str,
    tables: Sequence[str],
    create: Callable[[duckdb.DuckDBPyConnection], None],
) -> Iterator[duckdb.DuckDBPyConnection]:
    """`partition_reader`'s database; when the block ends without error, each table is written
    back as the partition's new file (atomic replace). Tables the block left empty lose their
    file."""
    with partition_reader(lake, partition, tables, create) as con:
        yield con
        for qualified in tables:
            _publish(con, qualified, partition_file(lake, qualified, partition))


def _publish(con: duckdb.DuckDBPyConnection, relation: str, final: Path) -> None:
    """Write `relation` (a table or view `con` sees) as `final`, replacing it atomically."""
    ((rows,),) = con.execute(f"SELECT count(*) FROM {relation}").fetchall()
    if rows == 0:
        final.unlink(missing_ok=True)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    # A dot name: readers' `*.parquet` glob skips it while it is being written.
    staging = final.with_name(f".{final.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        con.execute(f"COPY {relation} TO '{_quoted(staging)}' (FORMAT parquet)")
        with staging.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(staging, final)
    finally:
        staging.unlink(missing_ok=True)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


Split = Callable[[pl.DataFrame], pl.Series]
"""The partition key of every row of a frame (to move a table's rows into the lake)."""


def attach_lake(
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    tables: Sequence[str],
    *,
    split: Split | None = None,
) -> dict[str, int]:
    """Make each of `tables` a view over its lake files in the database `con` is open on.

    A table still in its place (a deployment switched from the file to the lake) is dropped
    while empty. With rows, it is refused without `split` (rows are never dropped); with
    `split`, its rows are moved: those of each partition that has no file yet become that
    partition's file (a file already there was written since the switch, so it is newer), then
    the table is dropped. Tables without files are left as they are. Returns the files each
    view reads now."""
    attached = {}
    for qualified in tables:
        schema, _, name = qualified.partition(".")
        kind = con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_schema = ? "
            "AND table_name = ? AND table_catalog = current_database()",
            [schema, name],
        ).fetchall()
        rows = None
        if kind and kind[0][0] == "BASE TABLE":
            ((rows,),) = con.execute(f"SELECT count(*) FROM {qualified}").fetchall()
            if rows and split is not None:
                _move(con, lake, qualified, split)
        files = _files(lake, qualified)
        if not files:
            continue
        if rows is not None:
            if rows and split is None:
                raise LakeError(
                    f"{qualified} holds {rows} rows in the DuckDB file and {LAKE_DIR_ENV} is "
                    f"set: copy them to {table_dir(lake, qualified)} first, or unset it"
                )
            con.execute(f"DROP TABLE {qualified}")
        pattern = _quoted(table_dir(lake, qualified) / "*.parquet")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.execute(
            f"CREATE OR REPLACE VIEW {qualified} AS "
            f"SELECT * FROM read_parquet('{pattern}', union_by_name = true)"
        )
        attached[qualified] = len(files)
    return attached


def _move(con: duckdb.DuckDBPyConnection, lake: Path, qualified: str, split: Split) -> None:
    """Write the rows of the table `qualified` as the files of the partitions without one."""
    frame = con.sql(f"SELECT * FROM {qualified}").pl()
    keys = split(frame)
    for partition in keys.unique().sort().to_list():
        final = partition_file(lake, qualified, partition)
        if final.exists():
            continue
        con.register("_moving", frame.filter(keys == partition).to_arrow())
        try:
            _publish(con, "_moving", final)
        finally:
            con.unregister("_moving")


@contextmanager
def read_lake(
    lake: Path,
    tables: Sequence[str],
    create: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only look at `tables` in the lake: an in-memory database with a view over each
    table's files (tables `create` made and no file fills stay as created)."""
    con = duckdb.connect()
    try:
        if create is not None:
            create(con)
        attach_lake(con, lake, tables)
        yield con
    finally:
        con.close()
