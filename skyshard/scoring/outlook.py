"""The planning horizon in numbers: per-hour shard demand, host supply and price, from the
forecasts where a series has one and from configuration or the last observation where not.

Forecast rows are aligned by step (hours after their own training end) onto one grid that
starts after `as_of`, so series whose history ends at different hours still line up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl
from scipy.special import ndtri

from skyshard.forecast.series_id import SeriesKind, parse_series_ids
from skyshard.scoring.data import HOST_RESOURCES, SHARD_METRICS, PlanningData

# Persistence fallback for a shard without a forecast: the last value, bounded by the peak of
# this many trailing hours.
FALLBACK_WINDOW_H = 24


@dataclass(frozen=True)
class Outlook:
    """`demand`: shard_id, resource, step, yhat, upper, sd (every shard x SHARD_METRICS; sd
    the forecast's residual standard deviation, null where unknown: see `demand_sd`);
    `supply`: host_id, resource, step, supply (what shards may use on the host);
    `price`: provider_id, region, step, price (per cpu-hour);
    `provider_capacity`: provider_id, step, lower, last (total cpu capacity)."""

    as_of: datetime
    horizon_h: int
    demand: pl.DataFrame
    supply: pl.DataFrame
    price: pl.DataFrame
    provider_capacity: pl.DataFrame

    def peak_demand(self) -> pl.DataFrame:
        """Per shard the horizon's peak upper bound and peak point forecast, one column per
        resource: `<r>` (upper) and `<r>_point`."""
        peaks = self.demand.group_by("shard_id", "resource").agg(
            upper=pl.col("upper").max(), point=pl.col("yhat").max()
        )
        upper = peaks.pivot(on="resource", index="shard_id", values="upper")
        point = peaks.pivot(on="resource", index="shard_id", values="point")
        point = point.rename({r: f"{r}_point" for r in point.columns if r != "shard_id"})
        return upper.join(point, on="shard_id").sort("shard_id")

    def mean_demand(self) -> pl.DataFrame:
        """Per shard the point forecast's mean over the horizon, one `<r>_mean` column per
        resource (what the shard is expected to use, and pay for)."""
        means = self.demand.group_by("shard_id", "resource").agg(pl.col("yhat").mean())
        means = means.pivot(on="resource", index="shard_id", values="yhat")
        return means.rename({r: f"{r}_mean" for r in means.columns if r != "shard_id"})

    def min_supply(self) -> pl.DataFrame:
        """Per host the horizon's lowest supply, one column per resource."""
        lowest = self.supply.group_by("host_id", "resource").agg(pl.col("supply").min())
        return lowest.pivot(on="resource", index="host_id", values="supply").sort("host_id")

    def mean_price(self) -> pl.DataFrame:
        return self.price.group_by("provider_id", "region").agg(
            price_mean=pl.col("price").mean(), price_max=pl.col("price").max()
        )


def _naive(ts: pl.Expr) -> pl.Expr:
    return ts.dt.replace_time_zone(None)


def _by_step(forecasts: pl.DataFrame, kind: SeriesKind) -> pl.DataFrame:
    """Forecast rows of one series kind, split into their id parts (`key` the owner, `sub`
    the name) and a step number."""
    kind_, owner, name = parse_series_ids()
    rows = forecasts.filter(kind_ == kind.value)
    # Tables stored before forecasts carried a spread lack the column: they use the bounds.
    sd = pl.col("yhat_sd") if "yhat_sd" in rows.columns else pl.lit(None, pl.Float64)
    return rows.select(
        key=owner,
        sub=name,
        step=(_naive(pl.col("ts")) - _naive(pl.col("train_end"))).dt.total_hours(),
        yhat=pl.col("yhat"),
        lower=pl.col("yhat_lower"),
        upper=pl.col("yhat_upper"),
        sd=sd,
    )


def demand_sd(interval: float, measured: bool) -> pl.Expr:
    """A demand row's standard deviation: with `measured` (policy
    `planning.measured_spread`), the forecast's residual one where it has one; else, and for
    rows without one, the margin to the upper bound as `z` standard deviations of a normal
    (z from the central `interval`). The bounds are a tail quantile of a group's pool; what a
    host's sum varies by is the sum of its shards' own variances."""
    z = float(ndtri((1 + interval) / 2))
    bounds = (pl.col("upper") - pl.col("yhat")) / z
    return pl.coalesce("sd", bounds) if measured else bounds


def _steps(horizon_h: int) -> pl.DataFrame:
    return pl.DataFrame({"step": pl.int_range(1, horizon_h + 1, eager=True).cast(pl.Int64)})


def _demand(data: PlanningData, fc: pl.DataFrame, horizon_h: int) -> pl.DataFrame:
    requests = data.shards.select(
        "shard_id", *[pl.col(f"{m}_request").alias(m) for m in SHARD_METRICS]
    ).unpivot(index="shard_id", variable_name="resource", value_name="request")
    recent = data.usage.sort("hour").group_by("shard_id").tail(FALLBACK_WINDOW_H)
    last = (
        recent.unpivot(index=["shard_id", "hour"], on=[f"{m}_avg" for m in SHARD_METRICS])
        .with_columns(resource=pl.col("variable").str.strip_suffix("_avg"))
        .drop_nulls("value")
        .sort("hour")
        .group_by("shard_id", "resource")
        .agg(last=pl.col("value").last(), recent_peak=pl.col("value").max())
    )
    fallback = (
        requests.join(last, on=["shard_id", "resource"], how="left")
        .join(_steps(horizon_h), how="cross")
        .select(
            "shard_id",
            "resource",
            "step",
            fb_yhat=pl.coalesce("last", "request"),
            fb_upper=pl.coalesce("recent_peak", "request"),
        )
    )
    forecast = _by_step(fc, SeriesKind.SHARD).select(
        shard_id="key", resource="sub", step="step", f_yhat="yhat", f_upper="upper", sd="sd"
    )
    return (
        fallback.join(forecast, on=["shard_id", "resource", "step"], how="left")
        .select(
            "shard_id",
            "resource",
            "step",
            yhat=pl.coalesce("f_yhat", "fb_yhat").clip(lower_bound=0.0),
            upper=pl.coalesce("f_upper", "fb_upper").clip(lower_bound=0.0),
            sd="sd",
        )
        .with_columns(upper=pl.max_horizontal("upper", "yhat"))
        .sort("shard_id", "resource", "step")
    )


def _supply(data: PlanningData, fc: pl.DataFrame, demand: pl.DataFrame, horizon_h: int):
    """Free capacity's lower bound plus the upper quantile of what our own shards there use
    (both come out of the same host), capped at the configured capacity; configured capacity
    where the host has no capacity forecast.

    The free series' margin (point - lower bound) already holds our shards' spread, since
    their use is part of the series; adding back only their point forecast would charge that
    spread twice, here and on the demand side. So the part of the margin our shards explain
    is added back too: their pooled margin on the host (root of their summed squared margins:
    independent deviations), at most the whole free margin."""
    configured = data.hosts.select(
        "host_id", *[pl.col(f"{r}_capacity").alias(r) for r in HOST_RESOURCES]
    ).unpivot(index="host_id", variable_name="resource", value_name="configured")
    own = (
        demand.join(
            data.shards.select("shard_id", host_id="current_host_id"), on="shard_id", how="inner"
        )
        .group_by("host_id", "resource", "step")
        .agg(
            own=pl.col("yhat").sum(),
            own_margin=((pl.col("upper") - pl.col("yhat")) ** 2).sum().sqrt(),
        )
    )
    free = _by_step(fc, SeriesKind.HOST).select(
        host_id="key",
        resource="sub",
        step="step",
        free_lower="lower",
        free_margin=pl.col("yhat") - pl.col("lower"),
    )
    return (
        configured.join(_steps(horizon_h), how="cross")
        .join(free, on=["host_id", "resource", "step"], how="left")
        .join(own, on=["host_id", "resource", "step"], how="left")
        .select(
            "host_id",
            "resource",
            "step",
            supply=pl.when(pl.col("free_lower").is_null())
            .then(pl.col("configured"))
            .otherwise(
                pl.min_horizontal(
                    "configured",
                    (
                        pl.col("free_lower")
                        + pl.col("own").fill_null(0.0)
                        + pl.min_horizontal(
                            pl.col("own_margin").fill_null(0.0),
                            pl.col("free_margin").clip(lower_bound=0.0),
                        )
                    ).clip(lower_bound=0.0),
                )
            ),
        )
        .sort("host_id", "resource", "step")
    )


def _price(data: PlanningData, fc: pl.DataFrame, horizon_h: int) -> pl.DataFrame:
    regions = data.hosts.select("provider_id", "region").unique()
    listed = regions.join(
        data.providers.select("provider_id", list_price="list_price_per_cpu_hour"),
        on="provider_id",
    )
    last = (
        data.prices.sort("hour")
        .group_by("provider_id", "region")
        .agg(last_price=pl.col("price_per_cpu_hour").last())
    )
    forecast = _by_step(fc, SeriesKind.PRICE).select(
        provider_id="key", region="sub", step="step", f_price="yhat"
    )
    return (
        listed.join(last, on=["provider_id", "region"], how="left")
        .join(_steps(horizon_h), how="cross")
        .join(forecast, on=["provider_id", "region", "step"], how="left")
        .select(
            "provider_id",
            "region",
            "step",
            price=pl.coalesce("f_price", "last_price", "list_price").clip(lower_bound=0.0),
        )
        .sort("provider_id", "region", "step")
    )


def _provider_capacity(data: PlanningData, fc: pl.DataFrame) -> pl.DataFrame:
    schema = {"provider_id": pl.String, "step": pl.Int64, "lower": pl.Float64, "last": pl.Float64}
    if data.capacity.is_empty():
        return pl.DataFrame(schema=schema)
    totals = data.capacity.group_by("provider_id", "hour").agg(pl.col("cpu_capacity").sum())
    last = totals.sort("hour").group_by("provider_id").agg(last=pl.col("cpu_capacity").last())
    forecast = _by_step(fc, SeriesKind.CAPACITY).select(
        provider_id="key", step="step", lower="lower"
    )
    return forecast.join(last, on="provider_id").select(schema.keys()).cast(schema)


def build_outlook(data: PlanningData, forecasts: pl.DataFrame, horizon_h: int) -> Outlook:
    """The outlook for the `horizon_h` hours after `data.as_of` from a forecast table (may be
    empty: everything then falls back to the last observation or configuration)."""
    demand = _demand(data, forecasts, horizon_h)
    return Outlook(
        as_of=data.as_of,
        horizon_h=horizon_h,
        demand=demand,
        supply=_supply(data, forecasts, demand, horizon_h),
        price=_price(data, forecasts, horizon_h),
        provider_capacity=_provider_capacity(data, forecasts),
    )


def step_times(as_of: datetime, steps: pl.Expr) -> pl.Expr:
    return pl.lit(as_of) + steps * pl.lit(timedelta(hours=1))
