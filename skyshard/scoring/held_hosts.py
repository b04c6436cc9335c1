"""Hosts whose current shards and other tenants never ran out of room lately are held, not relieved.

Forecast margins pooled as independent normals (`problem.pooled_demand`) and a free-capacity
forecast made on its own (`outlook._supply`) can see an overload on a host that, with the
very shards it holds now, never came near one: thirty small on/off VMs whose upper bounds
each allow them to switch on pool to a margin as large as the host. Relieving such a host
moves shards for nothing. With `planning.hold_hosts_with_room`, a host whose current shards plus
its other tenants used at most its configured capacity in every hour of the last
WINDOW_DAYS (a resource at a time) is held: its supply in the placement is raised to what
its current shards count there, so it is not relieved. It gains no room either: a shard may
join it only within the supply the forecasts gave it.
"""

from __future__ import annotations

import polars as pl

from skyshard.scoring.data import HOST_RESOURCES, SHARD_METRICS, PlanningData

WINDOW_DAYS = 14
# Fewer complete hours than this say too little about what the host's shards do together.
MIN_HOURS = 72


def peak_use(data: PlanningData) -> pl.DataFrame:
    """`host_id, resource, peak, hours`: per host the highest hourly use over the last
    WINDOW_DAYS by its other tenants (configured - free - what our shards ran there that
    hour) plus the shards placed on it now (wherever they ran), over the hours where each
    of them and the host reported."""
    schema = {"host_id": pl.String, "resource": pl.String, "peak": pl.Float64, "hours": pl.UInt32}
    placed = data.shards.select("shard_id", now="current_host_id").drop_nulls()
    if data.usage.is_empty() or data.capacity.is_empty() or placed.is_empty():
        return pl.DataFrame(schema=schema)
    since = data.as_of - pl.duration(days=WINDOW_DAYS)
    usage = data.usage.filter(pl.col("hour") > since)
    metrics = [f"{m}_avg" for m in SHARD_METRICS]
    ran_there = usage.group_by("host_id", "hour").agg(pl.col(metrics).sum().name.suffix("_then"))
    count = placed.group_by("now").agg(shards=pl.len())
    placed_now = (
        usage.join(placed, on="shard_id")
        .group_by("now", "hour")
        .agg(pl.len().alias("reporting"), pl.col(metrics).sum().name.suffix("_now"))
        .join(count, on="now")
        .filter(pl.col("reporting") == pl.col("shards"))
        .rename({"now": "host_id"})
    )
    configured = data.hosts.select("host_id", *[f"{r}_capacity" for r in HOST_RESOURCES])

    def used(r: str) -> pl.Expr:
        others = pl.col(f"{r}_capacity") - pl.col(f"{r}_free")
        if r in SHARD_METRICS:
            others = (others - pl.col(f"{r}_avg_then").fill_null(0.0)).clip(lower_bound=0.0)
            return (others + pl.col(f"{r}_avg_now")).alias(r)
        return others.alias(r)

    hourly = (
        data.capacity.filter(pl.col("hour") > since)
        .select("host_id", "hour", *[f"{r}_free" for r in HOST_RESOURCES])
        .join(configured, on="host_id")
        .join(ran_there, on=["host_id", "hour"], how="left")
        .join(placed_now, on=["host_id", "hour"])
        .select("host_id", *[used(r) for r in HOST_RESOURCES])
    )
    return (
        hourly.group_by("host_id")
        .agg(pl.len().alias("hours"), *[pl.col(r).max() for r in HOST_RESOURCES])
        .unpivot(index=["host_id", "hours"], on=list(HOST_RESOURCES), variable_name="resource")
        .select("host_id", "resource", peak="value", hours="hours")
        .cast(schema)
    )


def held_hosts(data: PlanningData) -> pl.DataFrame:
    """`host_id, resource` pairs to hold: at least MIN_HOURS complete hours, and a peak use
    within the configured capacity."""
    configured = data.hosts.select(
        "host_id", *[pl.col(f"{r}_capacity").alias(r) for r in HOST_RESOURCES]
    ).unpivot(index="host_id", variable_name="resource", value_name="configured")
    return (
        peak_use(data)
        .join(configured, on=["host_id", "resource"])
        .filter(pl.col("hours") >= MIN_HOURS, pl.col("peak") <= pl.col("configured"))
        .select("host_id", "resource")
    )
