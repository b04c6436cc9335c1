"""The tables of schema `raw`: their columns, keys, the window each source replaces, and DDL.

Every ingested row carries `source_id`, `fetched_at` and `payload_hash`. A re-ingest of a
source replaces that source's rows with the same key (for time series: the same series and
timestamp; with the source's `replace: window`, everything in the time span the payload
covers), so running the same window twice leaves no duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class RawTable:
    name: str
    columns: tuple[tuple[str, str], ...]
    """(name, DuckDB type) in table order; the ingestion metadata columns come last."""
    window_column: str | None
    """Timestamp column whose [min, max] range a `replace: window` source replaces."""
    key: tuple[str, ...]
    """Columns identifying one row within a source."""

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]


INGEST_COLUMNS = (
    ("source_id", "VARCHAR"),
    ("fetched_at", "TIMESTAMP"),
    ("payload_hash", "VARCHAR"),
)

SHARD_USAGE = RawTable(
    "shard_usage",
    (
        ("provider_id", "VARCHAR"),
        ("shard_id", "VARCHAR"),
        ("metric", "VARCHAR"),  # cpu | mem_gb | net_mbps
        ("ts", "TIMESTAMP"),  # UTC
        ("value", "DOUBLE"),
        *INGEST_COLUMNS,
    ),
    window_column="ts",
    key=("shard_id", "metric", "ts"),
)

HOST_METRICS = RawTable(
    "host_metrics",
    (
        ("provider_id", "VARCHAR"),
        ("host_id", "VARCHAR"),
        ("metric", "VARCHAR"),  # {cpu,mem_gb,gpu,net_mbps}_{capacity,free}
        ("ts", "TIMESTAMP"),
        ("value", "DOUBLE"),
        *INGEST_COLUMNS,
    ),
    window_column="ts",
    key=("host_id", "metric", "ts"),
)

PRICES = RawTable(
    "prices",
    (
        ("provider_id", "VARCHAR"),
        ("region", "VARCHAR"),
        ("zone", "VARCHAR"),
        ("instance_type", "VARCHAR"),
        ("product", "VARCHAR"),
        ("ts", "TIMESTAMP"),
        ("price", "DOUBLE"),  # currency units per instance-hour
        ("cpu_per_instance", "DOUBLE"),  # from the source's instance_types parameter
        ("mem_gb_per_instance", "DOUBLE"),  # GiB per instance; NULL where the source has none
        *INGEST_COLUMNS,
    ),
    window_column="ts",
    key=("zone", "instance_type", "product", "ts"),
)

INCIDENTS = RawTable(
    "incidents",
    (
        ("provider_id", "VARCHAR"),
        ("incident_id", "VARCHAR"),
        ("kind", "VARCHAR"),  # incident | maintenance
        ("name", "VARCHAR"),
        ("status", "VARCHAR"),
        ("impact", "VARCHAR"),  # none | minor | major | critical | maintenance
        ("started_at", "TIMESTAMP"),
        ("resolved_at", "TIMESTAMP"),  # NULL while open
        ("scheduled_until", "TIMESTAMP"),  # end of a maintenance's announced window
        ("updated_at", "TIMESTAMP"),
        ("components", "VARCHAR[]"),
        ("regions", "VARCHAR[]"),  # regions the components map to; empty: the whole provider
        *INGEST_COLUMNS,
    ),
    window_column=None,
    key=("incident_id",),
)

COMPONENTS = RawTable(
    "components",
    (
        ("provider_id", "VARCHAR"),
        ("component_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("status", "VARCHAR"),
        ("updated_at", "TIMESTAMP"),
        *INGEST_COLUMNS,
    ),
    window_column=None,
    key=("component_id",),
)

LATENCY = RawTable(
    "latency",
    (
        ("src_provider_id", "VARCHAR"),
        ("dst_provider_id", "VARCHAR"),
        ("ts", "TIMESTAMP"),
        ("rtt_ms", "DOUBLE"),
        *INGEST_COLUMNS,
    ),
    window_column="ts",
    key=("src_provider_id", "dst_provider_id", "ts"),
)

SPOT_INTERRUPTION = RawTable(
    "spot_interruption",
    (
        ("provider_id", "VARCHAR"),
        ("region", "VARCHAR"),
        ("instance_type", "VARCHAR"),
        ("product", "VARCHAR"),  # Linux | Windows, as the advisor names them
        ("ts", "TIMESTAMP"),  # when the advice was read
        ("band", "VARCHAR"),  # the advisor's label, e.g. "5-10%"
        ("interruption_pct", "DOUBLE"),  # share of instances interrupted per month (band midpoint)
        ("savings_pct", "DOUBLE"),  # saving over on-demand
        *INGEST_COLUMNS,
    ),
    window_column="ts",
    key=("region", "instance_type", "product", "ts"),
)

QUARANTINE = RawTable(
    "quarantine",
    (
        ("provider_id", "VARCHAR"),
        ("target_table", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("raw_value", "VARCHAR"),
        *INGEST_COLUMNS,
    ),
    window_column=None,
    key=("target_table", "reason", "raw_value"),
)

INGEST_TABLES = (
    SHARD_USAGE,
    HOST_METRICS,
    PRICES,
    INCIDENTS,
    COMPONENTS,
    LATENCY,
    SPOT_INTERRUPTION,
)
BY_NAME = {t.name: t for t in (*INGEST_TABLES, QUARANTINE)}


def create_table_sql(schema: str, table: RawTable) -> str:
    columns = ", ".join(f'"{name}" {kind}' for name, kind in table.columns)
    return f"CREATE TABLE IF NOT EXISTS {schema}.{table.name} ({columns})"


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw tables, adding columns a newer skyshard declares to an older file."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for table in BY_NAME.values():
        con.execute(create_table_sql("raw", table))
        for name, kind in table.columns:
            con.execute(f'ALTER TABLE raw.{table.name} ADD COLUMN IF NOT EXISTS "{name}" {kind}')
