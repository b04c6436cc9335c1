"""The shared lake (`SKYSHARD_LAKE_DIR`): feed partitions written as whole Parquet files
without the DuckDB file, the same rows as ingesting into the file, re-ingesting a feed keeping
its rows, readers never seeing a partial file, and bad settings named; forecast partitions
writing their shard group's files from the read snapshot, never the DuckDB file, adding up to
the unpartitioned run, and forecast tables of the file moved to the lake."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from assets.forecasts import build_demand_forecasts
from orchestration.definitions import build_definitions
from orchestration.resources import build_resources
from skyshard import db
from skyshard.config import load_sky
from skyshard.forecast.groups import group_keys, partition_of, series_in_group
from skyshard.forecast.lake import (
    LAKE_TABLES,
    attach_forecast_lake,
    lake_fingerprints,
    write_groups,
)
from skyshard.forecast.store import create_tables
from skyshard.forecast.tables import (
    BACKTEST_SCHEMA,
    FORECAST_SCHEMA,
    SUMMARY_SCHEMA,
    ForecastResult,
)
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
    read_lake,
)
from skyshard.storage.snapshots import SnapshotUnavailable, publish, read_current
from tests.scale_out.conftest import SMALL_SKY
from tests.scale_out.test_partitions import Built, run_partition

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


# Forecasts in the lake: each shard group's partition writes its own files, on any machine.

FORECAST_KEY = dg.AssetKey(["forecast", "forecasts"])


@dataclass
class LakeBuilt:
    built: Built
    lake: Path


@pytest.fixture(scope="module")
def lake_built(small_sky, tmp_path_factory) -> Iterator[LakeBuilt]:
    """The small sky ingested into a lake and its features built on views over it (which
    publishes the read snapshot forecast partitions read). No slow models and no global model:
    both depend on the run, not only on the series (the slow ones on a time budget, the
    global one learns across the run's series), so a group's run would not reproduce the
    unpartitioned run's values."""
    policy = small_sky / "policy.yaml"
    settings = yaml.safe_load(policy.read_text())
    settings["forecast"]["slow_models"] = []
    settings["forecast"]["global_model"] = False
    policy.write_text(yaml.safe_dump(settings))
    folder = tmp_path_factory.mktemp("lake-db")
    built = Built(load_sky(small_sky), folder / "skyshard.duckdb")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("SKYSHARD_HOME", str(small_sky))
        monkeypatch.setenv("SKYSHARD_DUCKDB", str(built.duckdb))
        monkeypatch.setenv(LAKE_DIR_ENV, str(folder / "raw-lake"))
        job = build_definitions(built.sky).resolve_job_def("ingest_and_build")
        assert job.execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
        yield LakeBuilt(built, folder / "raw-lake")


def forecast_rows(lake: Path, table: str) -> pl.DataFrame:
    """Every row of a forecast table in `lake`, without the fit time, in a stable order."""
    with read_lake(lake, LAKE_TABLES, create_tables) as con:
        frame = con.sql(f"select * from {table}").pl().drop("trained_at", strict=False)
    return frame.sort(frame.columns, nulls_last=True)


POOLED = ["yhat_lower", "yhat_upper", "coverage_held_out", "quantile_low", "quantile_high"]
"""Columns from conformal residuals pooled over the series of one run (`skyshard.forecast.run`):
a group's run pools its own series only, so these differ from the unpartitioned run's."""


def assert_same_fits(lake: Path, other: Path) -> None:
    """The same series and rows in both lakes, every value equal but the pooled bounds."""
    for table in LAKE_TABLES:
        mine, theirs = forecast_rows(lake, table), forecast_rows(other, table)
        assert mine.height > 0, table
        assert_frame_equal(mine.drop(POOLED, strict=False), theirs.drop(POOLED, strict=False))


def group_files(lake: Path) -> dict[str, set[str]]:
    return {
        table: {p.stem for p in (lake / "forecast" / table.split(".")[1]).glob("*.parquet")}
        for table in LAKE_TABLES
    }


@contextmanager
def file_held_by_another_process(database: Path) -> Iterator[None]:
    """Another process holds the DuckDB file open for writing and its writer lock: any
    process that opened the file, even read-only, or waited for the lock would fail."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FILE, str(database)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        yield
    finally:
        holder.kill()
        holder.wait()


HOLD_FILE = """
import sys, time, duckdb
from skyshard import db
with db.writer_lock(sys.argv[1]):
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(600)
"""


def refitted(result: dg.ExecuteInProcessResult) -> int:
    (event,) = result.asset_materializations_for_node("forecast__forecasts")
    return event.metadata["refitted"].value


def test_forecast_partitions_write_their_groups_files_without_the_duckdb_file(
    lake_built, tmp_path, monkeypatch
):
    built = lake_built.built
    monkeypatch.setenv("SKYSHARD_HOME", str(built.sky.home))
    monkeypatch.setenv("SKYSHARD_DUCKDB", str(built.duckdb))
    whole = tmp_path / "whole"
    monkeypatch.setenv(LAKE_DIR_ENV, str(whole))
    unpartitioned = dg.materialize(
        [build_demand_forecasts(partitioned=False)], resources=build_resources()
    )
    assert unpartitioned.success
    every_group = group_files(whole)["forecast.summary"]
    assert every_group and every_group <= set(group_keys())
    with db.connect(built.duckdb, read_only=True) as con:  # the file reads the lake
        kinds = con.execute(
            "select table_name, table_type from information_schema.tables "
            "where table_schema = 'forecast' order by 1"
        ).fetchall()
    assert kinds == [("backtest", "VIEW"), ("forecasts", "VIEW"), ("summary", "VIEW")]

    lake = tmp_path / "groups"
    monkeypatch.setenv(LAKE_DIR_ENV, str(lake))
    written: set[str] = set()
    before = built.duckdb.stat().st_mtime_ns
    with file_held_by_another_process(built.duckdb):
        for group in group_keys():
            result = run_partition(built, "forecast_groups", group, monkeypatch)
            assert result.success, group
            written.add(group)
            files = group_files(lake)
            assert all(found <= written for found in files.values()), (group, files)
            assert (group in files["forecast.summary"]) == (group in every_group)
    assert built.duckdb.stat().st_mtime_ns == before
    assert not list(lake.rglob(".*.tmp"))
    assert_same_fits(lake, whole)

    group = sorted(every_group)[0]
    stored = forecast_rows(lake, "forecast.forecasts")
    again = run_partition(built, "forecast_groups", group, monkeypatch)
    assert again.success and refitted(again) == 0
    assert_frame_equal(forecast_rows(lake, "forecast.forecasts"), stored)
    # A changed input fingerprint: the group is refitted, its rows replaced, not added.
    summary = lake / "forecast" / "summary" / f"{group}.parquet"
    stale = pl.read_parquet(summary).with_columns(input_fingerprint=pl.lit("stale"))
    stale.write_parquet(summary)
    refit = run_partition(built, "forecast_groups", group, monkeypatch)
    assert refit.success and refitted(refit) == stale.height
    assert_same_fits(lake, whole)


def summaries(ids: list[str], fingerprint: str) -> ForecastResult:
    """A fit of `ids` with summary rows only (the other columns null)."""
    summary = pl.DataFrame({"series_id": ids, "input_fingerprint": [fingerprint] * len(ids)})
    return ForecastResult(
        forecasts=pl.DataFrame(schema=FORECAST_SCHEMA),
        backtests=pl.DataFrame(schema=BACKTEST_SCHEMA),
        summary=summary.with_columns(
            pl.lit(None, dtype).alias(name)
            for name, dtype in SUMMARY_SCHEMA.items()
            if name not in summary.columns
        )
        .select(SUMMARY_SCHEMA.keys())
        .cast(SUMMARY_SCHEMA),
    )


SERIES = [f"shard/kv-{i:03d}/cpu" for i in range(400)]


def test_a_reader_of_the_forecast_views_sees_whole_group_files(tmp_path):
    group = partition_of(SERIES[0])
    mine = series_in_group(SERIES, group)
    half = mine[: len(mine) // 2]
    lake = tmp_path / "lake"

    def write(series: list[str]) -> None:
        write_groups(lake, summaries(series, "fp"), dict.fromkeys(series, "fp"), series, [group])

    write(mine)
    seen: list[int] = []
    errors: list[str] = []
    done = threading.Event()
    with read_lake(lake, LAKE_TABLES, create_tables) as reader:

        def read() -> None:
            while not done.is_set():
                try:
                    query = "select count(*) from forecast.summary"
                    seen.append(reader.cursor().execute(query).fetchone()[0])
                except duckdb.Error as error:
                    errors.append(repr(error))

        thread = threading.Thread(target=read)
        thread.start()
        try:
            for i in range(20):
                write(half if i % 2 else mine)
        finally:
            done.set()
            thread.join()
    assert errors == [] and seen and set(seen) <= {len(mine), len(half)}
    assert group_files(lake)["forecast.summary"] == {group}


def test_forecast_tables_in_the_file_move_to_the_lake_when_it_is_set(tmp_path):
    """Switching a deployment from the file to the lake: the tables' rows become the files of
    the groups without one (a group's file was written since the switch: newer), then the
    tables become views; fingerprints carry over, so nothing is refitted for the switch."""
    ids = SERIES[:64]
    lake = tmp_path / "lake"
    newer = partition_of(ids[0])
    write_groups(lake, summaries(ids[:1], "in-lake"), {ids[0]: "in-lake"}, ids[:1], [newer])
    with duckdb.connect(tmp_path / "old.duckdb") as con:
        create_tables(con)
        db.replace_table(con, "forecast.summary", summaries(ids, "in-file").summary)
        attached = attach_forecast_lake(con, lake)
        kinds = con.execute(
            "select table_name, table_type from information_schema.tables "
            "where table_schema = 'forecast' order by 1"
        ).fetchall()
        query = "select series_id, input_fingerprint from forecast.summary"
        rows = dict(con.execute(query).fetchall())
    groups = {partition_of(sid) for sid in ids}
    assert attached == {"forecast.summary": len(groups)}
    # Empty tables stay until a group writes a file; the moved one is a view.
    assert kinds == [("backtest", "BASE TABLE"), ("forecasts", "BASE TABLE"), ("summary", "VIEW")]
    expected = {sid: "in-file" for sid in ids if partition_of(sid) != newer}
    assert rows == expected | {ids[0]: "in-lake"}
    assert lake_fingerprints(lake, sorted(groups)) == rows


def test_a_lake_file_with_the_wrong_columns_is_named(tmp_path):
    bad = partition_file(tmp_path, "forecast.summary", "group-3")
    bad.parent.mkdir(parents=True)
    pl.DataFrame({"series_id": ["x"], "bogus": [1]}).write_parquet(bad)
    with pytest.raises(LakeError, match=rf"{bad}: not a partition file of forecast\.summary"):
        lake_fingerprints(tmp_path, ["group-3"])


def test_a_partition_without_a_read_snapshot_is_told_where_it_looked(tmp_path):
    database = tmp_path / "elsewhere" / "skyshard.duckdb"
    where = rf"no read snapshot at {database}\.read/current"
    with pytest.raises(SnapshotUnavailable, match=where), read_current(database):
        pass


def test_a_worker_reads_the_snapshot_folder_without_the_duckdb_file(tmp_path):
    """What a worker mounts: `<db>.read` at the same path, not the file (`current` is a
    relative link, so the folder works wherever it is mounted at that path)."""
    database = tmp_path / "skyshard.duckdb"
    with db.connect(database) as con:
        con.execute("create schema marts; create table marts.t as select 42 as n")
    publish(database)
    lock = database.with_name("skyshard.duckdb.lock")
    database.unlink()  # the worker's machine: only the snapshot folder is there
    lock.unlink()
    with read_current(database) as (con, snapshot):
        assert con.execute("select n from marts.t").fetchall() == [(42,)]
    assert snapshot.path.parent == database.with_name("skyshard.duckdb.read")
    assert not database.exists() and not lock.exists()
