"""The shared lake (`SKYSHARD_LAKE_DIR`): feed partitions written as whole Parquet files
without the DuckDB file, the same rows as ingesting into the file, re-ingesting a feed keeping
its rows, readers never seeing a partial file, and bad settings named."""

from __future__ import annotations

import threading
from datetime import timedelta

import duckdb
import polars as pl
import pytest

from skyshard.config import load_sky
from skyshard.sources import ingest
from skyshard.sources.base import Window
from skyshard.sources.ingest import RAW_TABLES, attach_raw_lake, read_raw
from skyshard.sources.raw_tables import ensure_raw_schema
from skyshard.storage.lake import (
    LAKE_DIR_ENV,
    LakeError,
    attach_lake,
    lake_dir,
    partition_file,
    partition_writer,
)
from tests.scale_out.conftest import SMALL_SKY

WINDOW = Window(start=SMALL_SKY.end - timedelta(days=SMALL_SKY.days), end=SMALL_SKY.end)
KEY = "source_id, shard_id, metric, ts, value"


def usage(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(f"select {KEY} from raw.shard_usage order by all").fetchall()


def test_feeds_in_the_lake_hold_the_rows_the_duckdb_file_would(small_sky, tmp_path, monkeypatch):
    sky = load_sky(small_sky)
    monkeypatch.delenv(LAKE_DIR_ENV, raising=False)
    in_file = tmp_path / "file.duckdb"
    assert all(outcome.ok for outcome in ingest.ingest_all(sky, WINDOW, in_file))

    lake = tmp_path / "lake"
    monkeypatch.setenv(LAKE_DIR_ENV, str(lake))
    away = tmp_path / "never" / "skyshard.duckdb"
    outcomes = ingest.ingest_all(sky, WINDOW, away)
    assert all(outcome.ok for outcome in outcomes) and not away.parent.exists()
    feeds = {outcome.source.id for outcome in outcomes if outcome.rows}
    files = {p.stem for p in lake.glob("raw/*/*.parquet")}
    assert files == feeds
    again = ingest.ingest_all(sky, WINDOW, away, feeds=[outcomes[0].source.id])
    assert again[0].ok  # the same capture again: the feed's rows are replaced, not doubled

    lakeside = tmp_path / "lakeside.duckdb"
    with duckdb.connect(in_file, read_only=True) as file, duckdb.connect(lakeside) as con:
        ensure_raw_schema(con)
        attached = attach_raw_lake(con, lake)
        assert attached["raw.shard_usage"] == len(list(lake.glob("raw/shard_usage/*.parquet")))
        for table in RAW_TABLES:
            count = f"select count(*) from {table}"
            assert con.execute(count).fetchone() == file.execute(count).fetchone(), table
        assert usage(con) == usage(file)
    with read_raw(away) as con:
        assert con.execute("select count(*) from raw.shard_usage").fetchone()[0] > 0


def test_a_reader_sees_whole_partition_files_only(tmp_path):
    lake = tmp_path / "lake"

    def write(rows: int) -> None:
        with partition_writer(lake, "feed-a", ["raw.t"], create) as con:
            con.execute("delete from raw.t")
            con.execute("insert into raw.t select range from range(?)", [rows])

    def create(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("create schema raw")
        con.execute("create table raw.t (n bigint)")

    write(50_000)
    reader = duckdb.connect()
    create(reader)
    reader.execute("drop table raw.t")
    reader.execute(f"create view raw.t as select * from read_parquet('{lake}/raw/t/*.parquet')")
    sizes = [50_000 if i % 2 else 200_000 for i in range(20)]
    seen: list[int] = []
    errors: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                seen.append(reader.cursor().execute("select count(*) from raw.t").fetchone()[0])
            except duckdb.Error as error:
                errors.append(repr(error))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for rows in sizes:
            write(rows)
    finally:
        done.set()
        thread.join()
    assert errors == [] and seen and set(seen) <= {50_000, 200_000}
    assert [p.name for p in (lake / "raw" / "t").iterdir()] == ["feed-a.parquet"]


def test_rows_in_the_file_are_never_dropped_for_the_lake(tmp_path):
    lake = tmp_path / "lake"
    frame = pl.DataFrame({"n": [1, 2]})
    with partition_writer(lake, "feed-a", ["raw.t"], lambda c: c.execute(
        "create schema raw; create table raw.t (n bigint)"
    )) as con:  # fmt: skip
        con.register("f", frame.to_arrow())
        con.execute("insert into raw.t select * from f")
    with duckdb.connect(tmp_path / "old.duckdb") as con:
        con.execute("create schema raw; create table raw.t as select 7 as n")
        with pytest.raises(LakeError, match=r"raw\.t holds 1 rows in the DuckDB file"):
            attach_lake(con, lake, ["raw.t"])


def test_bad_lake_settings_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv(LAKE_DIR_ENV, "relative/lake")
    with pytest.raises(LakeError, match="SKYSHARD_LAKE_DIR='relative/lake': expected an abs"):
        lake_dir()
    with pytest.raises(LakeError, match=r"partition '\.\./x' of raw\.t"):
        partition_file(tmp_path, "raw.t", "../x")
    with pytest.raises(LakeError, match=r"table 'raw\.T; drop'"):
        partition_file(tmp_path, "raw.T; drop", "feed-a")
