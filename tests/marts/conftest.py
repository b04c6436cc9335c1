"""dbt marts built for real (dbt-duckdb) over hand-written raw rows and the example sky."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
from dbt.cli.main import dbtRunner

from skyshard import db
from skyshard.config import load_sky
from skyshard.config.sky_tables import sky_frames
from skyshard.sources.frames import rows_frame
from skyshard.sources.raw_tables import BY_NAME, ensure_raw_schema

ROOT = Path(__file__).resolve().parents[2]
DBT_DIR = ROOT / "dbt_project"
START = datetime(2026, 11, 27)
HOURS = 72
"""Shard telemetry spans these hours from START: the spine every hourly and daily mart uses."""


def usage_rows() -> list[dict]:
    return [
        {
            "provider_id": "aws-use1",
            "shard_id": "orders-db-000",
            "metric": "cpu",
            "ts": START + timedelta(hours=h),
            "value": 1.0,
        }
        for h in range(HOURS)
    ]


def build_marts(
    database: Path,
    rows: dict[str, list[dict]],
    target: Path,
    *,
    home: Path = ROOT / "config",
    dbt_vars: str | None = None,
) -> None:
    """Write the sky at `home` and `rows` (raw table → rows without ingestion columns) into
    `database`, then `dbt build` it; fails the test when any model or data test fails."""
    with db.connect(database) as con:
        ensure_raw_schema(con)
        for name, frame in sky_frames(load_sky(home), {}).items():
            db.replace_table(con, f"raw.{name}", frame)
        for name, table_rows in {"shard_usage": usage_rows(), **rows}.items():
            frame = rows_frame(name, [_complete(name, row) for row in table_rows])
            con.register("_rows", frame.to_arrow())
            con.execute(
                f"INSERT INTO raw.{name} BY NAME SELECT *, 'test' AS source_id, "
                "TIMESTAMP '2026-11-30' AS fetched_at, 'h' AS payload_hash FROM _rows"
            )
            con.unregister("_rows")
    args = ["build", "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)]
    args += ["--target-path", str(target), "--quiet"]
    if dbt_vars:
        args += ["--vars", dbt_vars]
    result = dbtRunner().invoke(args)
    assert result.success, result.exception or [
        r.message for r in (result.result or []) if r.status not in ("pass", "success")
    ]


def _complete(table: str, row: dict) -> dict:
    """`row` with every adapter column of `table` (missing ones NULL, lists empty)."""
    complete = {}
    for name, kind in BY_NAME[table].columns:
        if name in ("source_id", "fetched_at", "payload_hash"):
            continue
        complete[name] = row.get(name, [] if kind == "VARCHAR[]" else None)
    return complete


def query(database: Path, sql: str, params: list | None = None) -> pl.DataFrame:
    with duckdb.connect(str(database)) as con:
        return con.sql(sql, params=params).pl()
