"""Captures as users save them, through `ingest_all` into a real DuckDB file."""

from __future__ import annotations

import copy
from datetime import datetime

import duckdb

from skyshard.config import load_sky
from skyshard.sources.base import Window
from skyshard.sources.ingest import ingest_all
from tests.config.conftest import PROVIDERS, WORKLOADS, write_home

WINDOW = Window(datetime(2026, 11, 20), datetime(2026, 11, 28))


def home_with_usage(tmp_path, csv: bytes):
    providers = copy.deepcopy(PROVIDERS)
    home = tmp_path / "home"
    (home / "captures").mkdir(parents=True)
    (home / "captures" / "usage.csv").write_bytes(csv)
    providers["providers"][0]["sources"] = [
        {
            "id": "usage",
            "type": "csv_usage",
            "url": (home / "captures" / "usage.csv").as_uri(),
        }
    ]
    return load_sky(write_home(home, providers, WORKLOADS, None))


def test_impossible_rows_are_quarantined_with_their_reason(tmp_path):
    # shard db-000 requests 2 cpu; the largest host declares 32 cpu
    csv = (
        "\ufefftimestamp,shard_id,metric,value\r\n"
        "2026-11-27T10:00:00Z,db-000,cpu,1.5\r\n"
        "2026-11-27T10:05:00Z,db-000,cpu,1e308\r\n"
        "2199-12-31T00:00:00Z,db-000,cpu,1.0\r\n"
        "2026-11-27T10:10:00Z,db-000,cpu,NaN\r\n"
    ).encode()
    sky = home_with_usage(tmp_path, csv)
    database = tmp_path / "s.duckdb"
    (outcome,) = ingest_all(sky, WINDOW, database)
    assert outcome.ok, outcome.error
    with duckdb.connect(str(database), read_only=True) as con:
        kept = con.execute("select value from raw.shard_usage").fetchall()
        reasons = [
            r for (r,) in con.execute("select reason from raw.quarantine order by 1").fetchall()
        ]
    assert kept == [(1.5,)]
    assert len(reasons) == 3
    assert "value is not a finite number" in reasons
    assert any(r.startswith("timestamp in the future") for r in reasons)
    assert any(
        r.startswith("value 1e+308 exceeds 4.0 x the largest host capacity for cpu")
        for r in reasons
    )


def test_repeated_csv_header_fails_the_feed_naming_the_column(tmp_path):
    csv = b"timestamp,shard_id,metric,value,value\n2026-11-27T10:00:00Z,db-000,cpu,1,2\n"
    sky = home_with_usage(tmp_path, csv)
    (outcome,) = ingest_all(sky, WINDOW, tmp_path / "s.duckdb")
    assert "CSV header repeats column names ['value']" in outcome.error
    assert "usage" in outcome.error
