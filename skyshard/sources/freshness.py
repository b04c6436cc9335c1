"""How old each provider's newest telemetry is: data time, not ingestion time, so re-ingesting
an old capture still reads as stale."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

MAX_TELEMETRY_AGE = timedelta(hours=3)
"""Newest shard usage older than this (hourly ingest, plus slack for a late feed) is stale."""


def stale_providers(
    con: duckdb.DuckDBPyConnection, now: datetime, max_age: timedelta = MAX_TELEMETRY_AGE
) -> list[str]:
    """`provider: newest sample at ..., N h old` for every provider whose newest shard usage in
    `raw.shard_usage` is older than `max_age` at `now` (naive UTC)."""
    rows = con.execute(
        "SELECT provider_id, max(ts) AS newest FROM raw.shard_usage GROUP BY provider_id "
        "HAVING max(ts) < ? ORDER BY provider_id",
        [now - max_age],
    ).fetchall()
    return [
        f"{provider}: newest sample at {newest:%Y-%m-%d %H:%M}, "
        f"{(now - newest).total_seconds() / 3600:.0f} h old"
        for provider, newest in rows
    ]
