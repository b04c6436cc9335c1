"""Telemetry staleness is judged on the samples' own time, per provider."""

from datetime import datetime, timedelta

import duckdb

from skyshard.sources.freshness import stale_providers

NOW = datetime(2026, 11, 30, 12, 0)


def test_a_provider_whose_newest_sample_is_old_is_stale(tmp_path):
    with duckdb.connect(str(tmp_path / "t.duckdb")) as con:
        con.execute("create schema raw")
        con.execute("create table raw.shard_usage (provider_id varchar, ts timestamp)")
        con.execute(
            "insert into raw.shard_usage values (?, ?), (?, ?), (?, ?)",
            [
                "fresh",
                NOW - timedelta(minutes=10),
                "old",
                NOW - timedelta(days=3),
                "old",
                NOW - timedelta(days=2, hours=20),
            ],
        )
        assert stale_providers(con, NOW) == ["old: newest sample at 2026-11-27 16:00, 68 h old"]
        assert stale_providers(con, NOW, timedelta(days=3)) == []
