"""Predicted bottlenecks (`forecast.predicted_bottlenecks`): shards whose forecast upper-bound
demand will exceed what their host can give them within the horizon, or whose provider is
forecast to lose capacity, to price past the contract cap, or has an open incident."""

from __future__ import annotations

import polars as pl

from skyshard.forecast import first_crossings
from skyshard.forecast.series_id import SeriesKind, parse_series_ids, series_id_expr
from skyshard.scoring.data import PlanningData
from skyshard.scoring.outlook import Outlook, step_times

DEMAND = "demand_over_capacity"
CAPACITY_LOSS = "provider_capacity_loss"
PRICE = "price_over_cap"
INCIDENT = "open_incident"
# A provider whose total cpu capacity's lower bound falls below this share of today's is losing
# capacity (hosts withdrawn, spot reclaims), whatever our shards use.
CAPACITY_LOSS_FRACTION = 0.9

BOTTLENECK_SCHEMA = {
    "shard_id": pl.String,
    "host_id": pl.String,
    "provider_id": pl.String,
    "cause": pl.String,
    "resource": pl.String,
    "expected_at": pl.Datetime("us"),
    "hours_ahead": pl.Int64,
    "point_at": pl.Datetime("us"),
    "demand_upper": pl.Float64,
    "available": pl.Float64,
    "detail": pl.String,
}


def available_to_shards(data: PlanningData, outlook: Outlook) -> pl.DataFrame:
    """`shard_id, resource, step, available, yhat, upper`: what the shard's host can give it each
    hour (host supply minus the other shards' point forecasts there)."""
    placed = data.shards.select("shard_id", host_id="current_host_id")
    demand = outlook.demand.join(placed, on="shard_id")
    on_host = demand.group_by("host_id", "resource", "step").agg(host_load=pl.col("yhat").sum())
    return (
        demand.join(on_host, on=["host_id", "resource", "step"])
        .join(outlook.supply, on=["host_id", "resource", "step"])
        .select(
            "shard_id",
            "resource",
            "step",
            "yhat",
            "upper",
            available=pl.col("supply") - (pl.col("host_load") - pl.col("yhat")),
        )
    )


def _demand_bottlenecks(data: PlanningData, outlook: Outlook) -> pl.DataFrame:
    avail = available_to_shards(data, outlook).with_columns(
        series_id_expr(SeriesKind.SHARD, "shard_id", pl.col("resource")),
        ts=step_times(outlook.as_of, pl.col("step")).dt.replace_time_zone("UTC"),
    )
    crossings = first_crossings(
        avail.select(
            "series_id",
            "ts",
            "yhat",
            yhat_upper="upper",
            train_end=pl.lit(outlook.as_of).dt.replace_time_zone("UTC"),
        ),
        avail.select("series_id", "ts", capacity="available"),
    )
    at_crossing = avail.select(
        "series_id", upper_at="ts", demand_upper="upper", available="available"
    )
    _, shard_id, resource = parse_series_ids()
    return crossings.join(at_crossing, on=["series_id", "upper_at"]).select(
        shard_id=shard_id,
        cause=pl.lit(DEMAND),
        resource=resource,
        expected_at=pl.col("upper_at").dt.replace_time_zone(None),
        hours_ahead="hours_ahead",
        point_at=pl.col("point_at").dt.replace_time_zone(None),
        demand_upper="demand_upper",
        available="available",
        detail=pl.format(
            "{} demand upper bound {} above the {} its host can give",
            resource,
            pl.col("demand_upper").round(3),
            pl.col("available").round(3),
        ),
    )


def _provider_events(data: PlanningData, outlook: Outlook, policy_caps: pl.DataFrame):
    """`provider_id, region (null = every region), cause, hours_ahead, detail` per provider
    event: capacity loss, price above cap, open incident."""
    loss = (
        outlook.provider_capacity.filter(pl.col("lower") < CAPACITY_LOSS_FRACTION * pl.col("last"))
        .group_by("provider_id")
        .agg(pl.col("step").min(), lower=pl.col("lower").min(), last=pl.col("last").first())
        .select(
            "provider_id",
            region=pl.lit(None, pl.String),
            cause=pl.lit(CAPACITY_LOSS),
            hours_ahead="step",
            detail=pl.format(
                "total cpu capacity forecast down to {} from {}",
                pl.col("lower").round(1),
                pl.col("last").round(1),
            ),
        )
    )
    price = (
        outlook.price.join(policy_caps, on="provider_id")
        .filter(pl.col("price") > pl.col("cap"))
        .group_by("provider_id", "region")
        .agg(pl.col("step").min(), price=pl.col("price").max(), cap=pl.col("cap").first())
        .select(
            "provider_id",
            "region",
            cause=pl.lit(PRICE),
            hours_ahead="step",
            detail=pl.format(
                "price forecast {} per cpu-hour above the cap {}",
                pl.col("price").round(4),
                "cap",
            ),
        )
    )
    incidents = data.incidents
    open_now = (
        incidents.filter((pl.col("day") == incidents["day"].max()) & pl.col("has_open_incident"))
        if not incidents.is_empty()
        else incidents
    )
    incident = open_now.select(
        "provider_id",
        "region",
        cause=pl.lit(INCIDENT),
        hours_ahead=pl.lit(0, pl.Int64),
        detail=pl.format("provider has an open incident in {}", "region"),
    )
    return pl.concat([loss, price, incident], how="vertical_relaxed")


def predict_bottlenecks(data: PlanningData, outlook: Outlook) -> pl.DataFrame:
    """Every predicted bottleneck (columns BOTTLENECK_SCHEMA), earliest first per shard."""
    placed = data.shards.select(
        "shard_id",
        host_id="current_host_id",
        provider_id="current_provider_id",
        region="current_region",
    )
    caps = data.providers.select("provider_id", cap="price_cap_per_cpu_hour").drop_nulls("cap")
    events = _provider_events(data, outlook, caps)
    by_provider = placed.join(events, on="provider_id").filter(
        pl.col("region_right").is_null() | (pl.col("region_right") == pl.col("region"))
    )
    provider_rows = by_provider.select(
        "shard_id",
        "cause",
        resource=pl.lit(None, pl.String),
        expected_at=pl.lit(outlook.as_of) + pl.duration(hours=pl.col("hours_ahead")),
        hours_ahead=pl.col("hours_ahead").cast(pl.Int64),
        point_at=pl.lit(None, pl.Datetime("us")),
        demand_upper=pl.lit(None, pl.Float64),
        available=pl.lit(None, pl.Float64),
        detail="detail",
    )
    rows = pl.concat([_demand_bottlenecks(data, outlook), provider_rows], how="vertical_relaxed")
    return (
        rows.join(placed.drop("region"), on="shard_id")
        .select(BOTTLENECK_SCHEMA.keys())
        .cast(BOTTLENECK_SCHEMA)
        .sort("shard_id", "hours_ahead", "cause", "resource", nulls_last=True)
    )
