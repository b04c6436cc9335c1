"""The marts planning reads, loaded once into polars frames (`PlanningData`), and the forecast
series built from them, with their ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import duckdb
import polars as pl

from skyshard.forecast.series_id import SeriesKind, series_id_expr

SHARD_METRICS: tuple[str, ...] = ("cpu", "mem_gb", "net_mbps")
HOST_RESOURCES: tuple[str, ...] = ("cpu", "mem_gb", "net_mbps")
HISTORY_DAYS = 28


@dataclass(frozen=True)
class PlanningData:
    """Configuration and hourly history from the marts, as of `as_of` (the last usage hour).

    Columns follow docs/tables.md; `dependencies` is `shard_id, depends_on_shard_id,
    max_latency_ms`; `providers` adds `list_price_per_gpu_hour`.
    """

    providers: pl.DataFrame
    hosts: pl.DataFrame
    shards: pl.DataFrame
    dependencies: pl.DataFrame
    usage: pl.DataFrame
    capacity: pl.DataFrame
    prices: pl.DataFrame
    incidents: pl.DataFrame
    latency: pl.DataFrame
    spot_interruption: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={"provider_id": pl.String, "region": pl.String, "interruption_rate": pl.Float64}
        )
    )
    """Monthly share of spot instances interrupted per provider region (AWS Spot Advisor)."""

    @property
    def as_of(self):
        """The last hour with usage (or price, or capacity) data; planning starts after it."""
        for frame in (self.usage, self.capacity, self.prices):
            if not frame.is_empty():
                return frame["hour"].max()
        raise ValueError("no hourly history in marts: run ingestion and dbt build first")


_QUERIES = {
    "providers": """
        select p.*, coalesce(s.list_price_per_gpu_hour, 0) as list_price_per_gpu_hour
        from marts.dim_providers p left join raw.sky_providers s using (provider_id)""",
    "hosts": "select * from marts.dim_hosts",
    "shards": "select * from marts.dim_shards",
    "dependencies": """
        select shard_id, depends_on_shard_id, cast(max_latency_ms as double) as max_latency_ms
        from raw.sky_shard_dependencies""",
    "usage": """
        select shard_id, host_id, provider_id, hour, cpu_avg, mem_gb_avg, net_mbps_avg
        from marts.fct_shard_usage_hourly where hour > ?""",
    "capacity": "select * from marts.fct_provider_capacity_hourly where hour > ?",
    "prices": """
        select provider_id, region, hour, price_per_cpu_hour
        from marts.fct_provider_price_hourly where hour > ?""",
    "incidents": "select * from marts.fct_region_incidents",
    "latency": "select src_provider_id, dst_provider_id, p95_ms from marts.fct_latency",
    "spot_interruption": """
        select provider_id, region, avg(interruption_pct) / 100 as interruption_rate
        from marts.fct_spot_interruption group by all""",
}


def load_planning_data(
    con: duckdb.DuckDBPyConnection, history_days: int = HISTORY_DAYS
) -> PlanningData:
    """Read the marts (the last `history_days` days of hourly facts)."""
    last = con.execute("select max(hour) from marts.fct_shard_usage_hourly").fetchall()[0][0]
    if last is None:
        raise ValueError(
            "marts.fct_shard_usage_hourly is empty: run `skyshard ingest` and `dbt build` first"
        )
    since = last - timedelta(days=history_days)
    frames = {}
    for name, sql in _QUERIES.items():
        params = [since] if "?" in sql else []
        frames[name] = con.sql(sql, params=params).pl()
    return PlanningData(**frames)


def _long(frame: pl.DataFrame, series_id: pl.Expr, value: str) -> pl.DataFrame:
    return frame.select(
        series_id=series_id,
        ts=pl.col("hour").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        value=pl.col(value).cast(pl.Float64),
    )


def forecast_input(data: PlanningData, shard_metrics: tuple[str, ...] = SHARD_METRICS):
    """Every series planning forecasts, as the `series_id, ts, value` frame `forecast_series`
    takes: shard demand per metric, host free capacity per resource, price per provider and
    region, and each provider's total cpu capacity (to see capacity being withdrawn)."""
    parts = [
        _long(data.usage, series_id_expr(SeriesKind.SHARD, "shard_id", m), f"{m}_avg")
        for m in shard_metrics
    ]
    if not data.capacity.is_empty():
        parts += [
            _long(data.capacity, series_id_expr(SeriesKind.HOST, "host_id", r), f"{r}_free")
            for r in HOST_RESOURCES
        ]
        provider_capacity = data.capacity.group_by("provider_id", "hour").agg(
            pl.col("cpu_capacity").sum()
        )
        parts.append(
            _long(
                provider_capacity,
                series_id_expr(SeriesKind.CAPACITY, "provider_id", "cpu"),
                "cpu_capacity",
            )
        )
    if not data.prices.is_empty():
        parts.append(
            _long(
                data.prices,
                series_id_expr(SeriesKind.PRICE, "provider_id", pl.col("region")),
                "price_per_cpu_hour",
            )
        )
    return pl.concat(parts).drop_nulls("value").sort("series_id", "ts")


def forecast_limits(data: PlanningData) -> pl.DataFrame:
    """The capacity of each shard and host series, for forecast screening, and its physical
    ceiling, for clipping bounds (`series_id, capacity, measures_free, ceiling`): a shard's
    demand against what its host could give it at the last hour (the host's free capacity
    plus the shard's own use; the configured capacity where the host reports none), a host's
    free capacity against its configured capacity; both capped at the configured capacity."""
    configured = data.hosts.select(
        "host_id", *[pl.col(f"{r}_capacity").alias(r) for r in HOST_RESOURCES]
    ).unpivot(index="host_id", variable_name="resource", value_name="configured")
    free = (
        data.capacity.sort("hour")
        .group_by("host_id")
        .last()
        .select("host_id", *[pl.col(f"{r}_free").alias(r) for r in HOST_RESOURCES])
        .unpivot(index="host_id", variable_name="resource", value_name="free")
    )
    own = (
        data.usage.sort("hour")
        .group_by("shard_id")
        .last()
        .select("shard_id", *[pl.col(f"{m}_avg").alias(m) for m in SHARD_METRICS])
        .unpivot(index="shard_id", variable_name="resource", value_name="own")
    )
    shards = (
        data.shards.select("shard_id", host_id="current_host_id")
        .join(configured, on="host_id")
        .join(free, on=["host_id", "resource"], how="left")
        .join(own, on=["shard_id", "resource"], how="left")
        .select(
            series_id_expr(SeriesKind.SHARD, "shard_id", pl.col("resource")),
            capacity=pl.coalesce(pl.col("free") + pl.col("own").fill_null(0.0), "configured"),
            measures_free=pl.lit(False),
            # A shard cannot use more than its whole host.
            ceiling="configured",
        )
    )
    hosts = configured.filter(pl.col("configured") > 0).select(
        series_id_expr(SeriesKind.HOST, "host_id", pl.col("resource")),
        capacity="configured",
        measures_free=pl.lit(True),
        ceiling="configured",
    )
    # A shard already past what its host can give is as risky as it gets, not invalid input.
    return pl.concat([shards, hosts]).with_columns(
        pl.col("capacity", "ceiling").clip(lower_bound=1e-6)
    )
