"""The `forecast` schema in DuckDB: what the last fit stored, and replacing it with a refit of
the changed series merged into the rows kept for the unchanged ones, in one transaction."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import duckdb
import polars as pl

from skyshard import db
from skyshard.forecast.tables import SCHEMAS, ForecastResult

TABLES = {
    "forecasts": "forecast.forecasts",
    "backtests": "forecast.backtest",
    "summary": "forecast.summary",
}
"""ForecastResult field → the table it is stored in."""


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The three tables, empty, with the columns and types a fit stores."""
    for table, schema in zip(TABLES.values(), SCHEMAS, strict=True):
        db.replace_table(con, table, pl.DataFrame(schema=schema))


def read_stored(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame | None:
    """A stored forecast table, or None before the first fit wrote it."""
    schema, name = table.split(".")
    found = db.scalar(
        con,
        "select count(*) from information_schema.tables "
        "where table_catalog = current_database() and table_schema = ? and table_name = ?",
        [schema, name],
    )
    return con.sql(f"select * from {table}").pl() if found else None


def stored_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Series id → the input fingerprint of its last fit (empty before the first fit)."""
    summary = read_stored(con, TABLES["summary"])
    if summary is None:
        return {}
    return dict(summary.select("series_id", "input_fingerprint").iter_rows())


def merge_refit(
    old: pl.DataFrame | None, fresh: pl.DataFrame, current: Collection[str], refit: Collection[str]
) -> pl.DataFrame:
    """`fresh` rows for the refitted series, plus `old` rows of the current series not refitted
    (series gone from the input are dropped), sorted by series."""
    if old is not None:
        kept = old.filter(pl.col("series_id").is_in(list(current)))
        kept = kept.filter(~pl.col("series_id").is_in(list(refit)))
        fresh = pl.concat([kept.select(fresh.columns).cast(fresh.schema), fresh])
    return fresh.sort("series_id")


def write_refit(
    con: duckdb.DuckDBPyConnection,
    result: ForecastResult,
    current: Mapping[str, str],
    refit: Collection[str],
) -> dict[str, pl.DataFrame]:
    """Store `result` (the fit of the `refit` series) merged with the kept rows of the other
    `current` series, all three tables in one transaction; returns what was stored."""
    everything = set(refit) == set(current)
    tables = {
        key: merge_refit(
            None if everything else read_stored(con, table), getattr(result, key), current, refit
        )
        for key, table in TABLES.items()
    }
    with db.transaction(con):
        for key, table in TABLES.items():
            db.replace_table(con, table, tables[key])
    return tables
