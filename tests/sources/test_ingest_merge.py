"""Re-ingesting merges: a capture replaces only the points it holds, unless told otherwise."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from skyshard import db
from skyshard.config.providers import Source
from skyshard.sources.frames import rows_frame
from skyshard.sources.ingest import CollectedSource, write_collected
from skyshard.sources.raw_tables import ensure_raw_schema

START = datetime(2026, 11, 27)


def usage(minutes: list[int], value: float) -> list[dict]:
    return [
        {
            "provider_id": "p",
            "shard_id": "s-000",
            "metric": "cpu",
            "ts": START + timedelta(minutes=m),
            "value": value,
        }
        for m in minutes
    ]


def write(database, rows: list[dict], replace: str = "points") -> None:
    source = Source(id="usage", type="csv_usage", url="file:///u.csv", replace=replace)
    collected = CollectedSource(
        source, "p", fetched_at=START, frames={"shard_usage": rows_frame("shard_usage", rows)}
    )
    with db.connect(database) as con:
        ensure_raw_schema(con)
        write_collected(con, collected)


def values(database) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(
            "select minute(ts) + 60 * hour(ts), value from raw.shard_usage order by ts"
        ).fetchall()


def test_sparse_recapture_keeps_the_finer_points(tmp_path):
    database = tmp_path / "s.duckdb"
    write(database, usage(list(range(200)), 1.0))
    write(database, usage([0, 199], 2.0))
    rows = values(database)
    assert len(rows) == 200
    assert rows[0] == (0, 2.0) and rows[-1] == (199, 2.0)
    assert {v for _, v in rows[1:-1]} == {1.0}


def test_same_capture_twice_leaves_no_duplicates(tmp_path):
    database = tmp_path / "s.duckdb"
    write(database, usage(list(range(10)), 1.0))
    write(database, usage(list(range(10)), 1.0))
    assert len(values(database)) == 10


def test_window_replace_is_explicit(tmp_path):
    database = tmp_path / "s.duckdb"
    write(database, usage(list(range(200)), 1.0), replace="window")
    write(database, usage([0, 199], 2.0), replace="window")
    assert values(database) == [(0, 2.0), (199, 2.0)]
