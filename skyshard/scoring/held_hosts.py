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

from collections.abc import Collection

import polars as pl

from skyshard.scoring.data import SHARD_METRICS, PlanningData

WINDOW_DAYS = 14
# Fewer complete hours than this say too little about what the host's shards do together.
MIN_HOURS = 72
# A shard moved within this many plan runs counts as moved within the window (14 days even
# if planning ran every hour; the default schedule runs every 4 hours).
MOVED_WITHIN_RUNS = 24 * WINDOW_DAYS


def peak_use(data: PlanningData) -> pl.DataFrame:
    """`host_id, resource, peak, hours`: per host the highest hourly use over the last
    WINDOW_DAYS by its other tenants (configured - free - what usage attributes to our
    shards on it that hour) plus the shards placed on it now, over the hours where each of
    them and the host reported; `peak` is null if any such hour misses a value."""
    schema = {"host_id": pl.String, "resource": pl.String, "peak": pl.Float64, "hours": pl.UInt32}
    placed = data.shards.select("shard_id", now="current_host_id").drop_nulls()
    if data.usage.is_empty() or data.capacity.is_empty() or placed.is_empty():
        return pl.DataFrame(schema=schema)
    since = data.as_of - pl.duration(days=WINDOW_DAYS)
    metrics = [f"{m}_avg" for m in SHARD_METRICS]
    usage = data.usage.filter(pl.col("hour") > since).drop_nulls(metrics)
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
    configured = data.hosts.select("host_id", *[f"{r}_capacity" for r in SHARD_METRICS])

    def used(r: str) -> pl.Expr:
        others = pl.col(f"{r}_capacity") - pl.col(f"{r}_free") - pl.col(f"{r}_avg_then")
        return (others.clip(lower_bound=0.0) + pl.col(f"{r}_avg_now")).alias(r)

    hourly = (
        data.capacity.filter(pl.col("hour") > since)
        .select("host_id", "hour", *[f"{r}_free" for r in SHARD_METRICS])
        .join(configured, on="host_id")
        .join(ran_there, on=["host_id", "hour"], how="left")
        .with_columns(pl.col(f"{m}_then").fill_null(0.0) for m in metrics)
        .join(placed_now, on=["host_id", "hour"])
        .select("host_id", *[used(r) for r in SHARD_METRICS])
    )
    return (
        hourly.group_by("host_id")
        .agg(
            pl.len().alias("hours"),
            *[
                pl.when(pl.col(r).null_count() == 0).then(pl.col(r).max()).alias(r)
                for r in SHARD_METRICS
            ],
        )
        .unpivot(index=["host_id", "hours"], on=list(SHARD_METRICS), variable_name="resource")
        .select("host_id", "resource", peak="value", hours="hours")
        .cast(schema)
    )


def held_hosts(data: PlanningData, moved: Collection[str] = ()) -> pl.DataFrame:
    """`host_id, resource` pairs to hold: at least MIN_HOURS complete hours, a peak use
    within the configured capacity, and none of the host's shards among `moved` (shards
    moved within the window: usage rows carry a shard's current host, so the hours before
    it arrived would not show what it adds to this host)."""
    configured = data.hosts.select(
        "host_id", *[pl.col(f"{r}_capacity").alias(r) for r in SHARD_METRICS]
    ).unpivot(index="host_id", variable_name="resource", value_name="configured")
    arrived = data.shards.filter(pl.col("shard_id").is_in(list(moved)))["current_host_id"]
    return (
        peak_use(data)
        .join(configured, on=["host_id", "resource"])
        .filter(
            pl.col("hours") >= MIN_HOURS,
            pl.col("peak") <= pl.col("configured"),
            ~pl.col("host_id").is_in(arrived.drop_nulls().to_list()),
        )
        .select("host_id", "resource")
    )
