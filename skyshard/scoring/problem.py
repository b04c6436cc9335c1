"""Turns the scored candidates and the outlook into the placement solver's input."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl
from scipy.special import ndtri

from skyshard.config.policy import PolicyFile
from skyshard.placement import Budget, Dependency, HostSupply, PlacementInput, ShardDemand
from skyshard.placement.constraints import rules_from_config
from skyshard.scoring.candidates import candidate_table, latency_map
from skyshard.scoring.data import HOST_RESOURCES, PlanningData
from skyshard.scoring.held_hosts import MOVED_WITHIN_RUNS, held_hosts
from skyshard.scoring.outlook import Outlook, demand_sd


def planning_budget(policy: PolicyFile, horizon_h: int) -> Budget:
    """Policy's per-cycle limits; the per-day saving threshold scaled to the horizon, since
    candidate costs are horizon totals."""
    planning = policy.planning
    return Budget(
        max_moves=planning.max_moves_per_cycle,
        min_saving_per_move=planning.min_saving_per_day * horizon_h / 24,
        min_cycles_between_moves=planning.hysteresis_cycles,
    )


def stuck_shards(scores: pl.DataFrame) -> list[str]:
    """Shards with no allowed host at all (policy or trust rule everything out)."""
    allowed = scores.group_by("shard_id").agg(pl.col("allowed").any())
    return sorted(allowed.filter(~pl.col("allowed"))["shard_id"])


def keep_stuck_in_place(scores: pl.DataFrame) -> pl.DataFrame:
    """Let stuck shards stay on their current host, so a rule nothing satisfies holds those
    shards still (they are reported) instead of making the whole plan infeasible."""
    stuck = stuck_shards(scores)
    return scores.with_columns(
        allowed=pl.col("allowed") | (pl.col("is_current") & pl.col("shard_id").is_in(stuck))
    )


def pin_unmovable(scores: pl.DataFrame, unmovable: Mapping[str, str]) -> pl.DataFrame:
    """Only the current host for shards the broker cannot migrate; every other candidate is
    blocked with the reason (shown in `plan.candidate_scores.blocked_by`)."""
    if not unmovable:
        return scores
    reasons = pl.DataFrame(
        {"shard_id": list(unmovable), "_unmovable": list(unmovable.values())},
        schema={"shard_id": pl.String, "_unmovable": pl.String},
    )
    block = pl.col("_unmovable").is_not_null() & ~pl.col("is_current")
    reason = pl.lit("cannot migrate: ") + pl.col("_unmovable")
    return (
        scores.join(reasons, on="shard_id", how="left")
        .with_columns(
            blocked_by=pl.when(block)
            .then(pl.concat_str([pl.col("blocked_by"), reason], separator="; ", ignore_nulls=True))
            .otherwise(pl.col("blocked_by")),
            allowed=pl.col("allowed") & ~block,
        )
        .drop("_unmovable")
    )


def _ratio(frame: pl.DataFrame, num: str, den: str) -> pl.DataFrame:
    """Per host and resource the median of num / den over the rows where den > 0."""
    return (
        frame.filter(pl.col(den) > 1e-12)
        .group_by("host_id", "resource")
        .agg(ratio=(pl.col(num) / pl.col(den)).median())
    )


def _with_ratio(frame: pl.DataFrame, ratio: pl.DataFrame) -> pl.DataFrame:
    """`frame` with its host's `ratio` (the median over hosts where its own has none, 1 where
    no host has one)."""
    overall = ratio.group_by("resource").agg(overall=pl.col("ratio").median())
    return (
        frame.join(ratio, on=["host_id", "resource"], how="left")
        .join(overall, on="resource", how="left")
        .with_columns(ratio=pl.coalesce("ratio", "overall", pl.lit(1.0)))
        .drop("overall")
    )


def pooled_demand(
    data: PlanningData, outlook: Outlook, interval: float, measured_spread: bool = False
) -> pl.DataFrame:
    """Each shard's linear share of a host's upper quantile (`shard_id` plus one column per
    resource).

    A host's load at the upper quantile is, each hour, its shards' summed point forecast plus
    the root of their summed squared margins (margin m = upper bound - point forecast, or with
    `measured_spread` z times the forecast's residual spread where it has one, z from the
    central `interval`: `outlook.demand_sd`; independent deviations pool), and its peak is the
    busiest such hour: neither the sum of the shards' upper bounds (spikes seldom coincide) nor
    of their peaks (daily cycles are out of phase). Both are not linear in the placement, so a
    shard counts at the ratios of the host it runs on now, which makes the shares add up to each
    host's pooled peak exactly as the shards are placed (a moving shard takes its ratios along;
    what it risks at its target is priced exactly by `headroom_risk`):
    - rho = sqrt(sum m^2) / sum m (median over the host's hours): a shard's hourly load is
      point + rho * m;
    - kappa = (host peak - sum of means) / (sum of peaks - sum of means): of the swing from its
      mean to its peak (of point + rho * m over the horizon) a shard counts kappa.
    A shard's share is its mean + kappa * (its peak - its mean): a flat shard counts in full.
    A shard without a host takes the median host's ratios.
    """
    hourly = outlook.demand.join(
        data.shards.select("shard_id", host_id="current_host_id"), on="shard_id", how="left"
    ).with_columns(margin=float(ndtri((1 + interval) / 2)) * demand_sd(interval, measured_spread))
    rho = _ratio(
        hourly.drop_nulls("host_id")
        .group_by("host_id", "resource", "step")
        .agg(pooled=(pl.col("margin") ** 2).sum().sqrt(), summed=pl.col("margin").sum()),
        "pooled",
        "summed",
    )
    load = _with_ratio(hourly, rho).select(
        "shard_id",
        "host_id",
        "resource",
        "step",
        load=pl.col("yhat") + pl.col("ratio") * pl.col("margin"),
    )
    per_shard = load.group_by("shard_id", "host_id", "resource").agg(
        mean=pl.col("load").mean(), peak=pl.col("load").max()
    )
    host_peak = (
        load.drop_nulls("host_id")
        .group_by("host_id", "resource", "step")
        .agg(pl.col("load").sum())
        .group_by("host_id", "resource")
        .agg(host_peak=pl.col("load").max())
    )
    kappa = _ratio(
        per_shard.drop_nulls("host_id")
        .group_by("host_id", "resource")
        .agg(pl.col("mean").sum(), pl.col("peak").sum())
        .join(host_peak, on=["host_id", "resource"])
        .select(
            "host_id",
            "resource",
            swing=pl.col("host_peak") - pl.col("mean"),
            swings=pl.col("peak") - pl.col("mean"),
        ),
        "swing",
        "swings",
    )
    return (
        _with_ratio(per_shard, kappa)
        .select(
            "shard_id",
            "resource",
            demand=pl.col("mean") + pl.col("ratio") * (pl.col("peak") - pl.col("mean")),
        )
        .pivot(on="resource", index="shard_id", values="demand")
    )


def _held_supply(supply: pl.DataFrame, shards: pl.DataFrame, held: pl.DataFrame) -> pl.DataFrame:
    """`supply` (host_id plus one column per resource) raised, on the `held` host-resource
    pairs, to what the shards placed there count (`shards`: current_host_id and shares)."""
    resources = [r for r in HOST_RESOURCES if r in shards.columns]
    occupied = (
        shards.group_by(host_id="current_host_id")
        .agg(pl.col(resources).fill_null(0.0).sum())
        .unpivot(index="host_id", variable_name="resource", value_name="occupied")
        .join(held, on=["host_id", "resource"])
    )
    return (
        supply.unpivot(index="host_id", variable_name="resource", value_name="supply")
        .join(occupied, on=["host_id", "resource"], how="left")
        .with_columns(
            supply=pl.when(pl.col("occupied").is_not_null())
            .then(pl.max_horizontal("supply", "occupied"))
            .otherwise("supply")
        )
        .pivot(on="resource", index="host_id", values="supply")
    )


def placement_input(
    data: PlanningData,
    outlook: Outlook,
    scores: pl.DataFrame,
    policy: PolicyFile,
    cycles_since_move: Mapping[str, int] | None = None,
) -> PlacementInput:
    """Shards at their share of a host's upper quantile (`pooled_demand`), hosts at their
    lowest forecast supply (with `planning.hold_hosts_with_room`, held hosts at least at what their
    shards count: `held_hosts.held_hosts`)."""
    cycles_since_move = cycles_since_move or {}
    share = pooled_demand(data, outlook, policy.forecast.interval, policy.planning.measured_spread)
    relief = scores.filter(pl.col("is_current")).select("shard_id", "overload_relief")
    shards = data.shards.join(share, on="shard_id", how="left").join(
        relief, on="shard_id", how="left"
    )
    demands = [
        ShardDemand(
            shard_id=row["shard_id"],
            current_host=row["current_host_id"],
            cpu=float(row["cpu"] or 0.0),
            mem_gb=float(row["mem_gb"] or 0.0),
            gpu=float(row["gpu_request"] or 0.0),
            net_mbps=float(row["net_mbps"] or 0.0),
            anti_affinity_group=row["workload_id"] if row["anti_affinity"] else None,
            cycles_since_move=cycles_since_move.get(row["shard_id"]),
            relief=row["overload_relief"],
        )
        for row in shards.iter_rows(named=True)
    ]
    supply = outlook.min_supply()
    if policy.planning.hold_hosts_with_room:
        moved = [s for s, runs in cycles_since_move.items() if runs < MOVED_WITHIN_RUNS]
        supply = _held_supply(supply, shards, held_hosts(data, moved))
    hosts = data.hosts.join(supply, on="host_id", how="left")
    supplies = [
        HostSupply(
            host_id=row["host_id"],
            provider_id=row["provider_id"],
            region=row["region"],
            cpu=float(row["cpu"]),
            mem_gb=float(row["mem_gb"]),
            gpu=float(row["gpu_capacity"]),
            net_mbps=float(row["net_mbps"]),
            gpu_devices=row.get("gpu_devices"),
            gpu_model=row.get("gpu_model"),
            gpu_memory_gb=row.get("gpu_memory_gb"),
        )
        for row in hosts.iter_rows(named=True)
    ]
    dependencies = [Dependency(a, b, float(limit)) for a, b, limit in data.dependencies.iter_rows()]
    return PlacementInput(
        shards=demands,
        hosts=supplies,
        candidates=candidate_table(keep_stuck_in_place(scores)),
        dependencies=dependencies,
        latency_ms=latency_map(data),
        budget=planning_budget(policy, outlook.horizon_h),
        rules=rules_from_config([(r.rule, r.fields()) for r in policy.placement_rules]),
    )
