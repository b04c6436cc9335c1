"""Provider facts from the marts that trust scoring and settlement read: daily availability and
the monthly price per cpu-hour. Before dbt has built the marts there are none."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import duckdb
import polars as pl

from skyshard.config.providers import Provider


def _marts(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame | None:
    try:
        return con.sql(sql).pl()
    except duckdb.CatalogException:
        return None


def daily_availability(con: duckdb.DuckDBPyConnection) -> pl.DataFrame | None:
    """`provider_id, day, availability` per provider and UTC day, or None without the marts."""
    return _marts(con, "select provider_id, day, availability from marts.fct_provider_incidents")


def settlement_prices(
    con: duckdb.DuckDBPyConnection, providers: Sequence[Provider], months: Iterable[date]
) -> dict[tuple[str, date], float]:
    """(provider, month) → price per cpu-hour: the mean observed in the marts; before dbt has
    built them, each provider's contract list price for every month."""
    observed = _marts(
        con,
        "select provider_id, date_trunc('month', hour)::date as month, "
        "avg(price_per_cpu_hour) as price from marts.fct_provider_price_hourly group by all",
    )
    if observed is not None:
        return {(p, m): price for p, m, price in observed.iter_rows()}
    months = list(months)
    return {(p.id, m): p.contract.price_per_cpu_hour for p in providers for m in months}
