"""Turns the scored candidates and the outlook into the placement solver's input."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from skyshard.config.policy import PolicyFile
from skyshard.placement import Budget, Dependency, HostSupply, PlacementInput, ShardDemand
from skyshard.scoring.candidates import candidate_table, latency_map
from skyshard.scoring.data import PlanningData
from skyshard.scoring.outlook import Outlook


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


def pooled_demand(data: PlanningData, outlook: Outlook) -> pl.DataFrame:
    """Each shard's linear share of a host's upper quantile (`shard_id` plus one column per
    resource).

    A host's load at the upper quantile is, each hour, its shards' summed point forecast plus
    the root of their summed squared margins (margin m = upper bound - point forecast;
    independent deviations pool), not the sum of their upper bounds: spikes seldom coincide.
    The root is not linear in the placement, so each margin counts at the pooling ratio
    rho = sqrt(sum m^2) / sum m of the hosts as they are now (the median over occupied host
    hours with any margin): exact on a host that pools like the median one. A shard's share
    is the horizon's peak of point + rho * m, hour by hour (a spike's margin and a busy hour's
    point are not added up). A tangent bound (valid for any set of shards) was tried first:
    its per-host intercept made every host too small for the spikiest single shards."""
    hourly = outlook.demand.join(
        data.shards.select("shard_id", host_id="current_host_id"), on="shard_id", how="left"
    ).with_columns(margin=pl.col("upper") - pl.col("yhat"))
    ratio = (
        hourly.drop_nulls("host_id")
        .group_by("host_id", "resource", "step")
        .agg(pooled=(pl.col("margin") ** 2).sum().sqrt(), summed=pl.col("margin").sum())
        .filter(pl.col("summed") > 0)
        .group_by("resource")
        .agg(rho=(pl.col("pooled") / pl.col("summed")).median())
    )
    return (
        hourly.join(ratio, on="resource", how="left")
        .group_by("shard_id", "resource")
        .agg(demand=(pl.col("yhat") + pl.col("rho").fill_null(1.0) * pl.col("margin")).max())
        .pivot(on="resource", index="shard_id", values="demand")
    )


def placement_input(
    data: PlanningData,
    outlook: Outlook,
    scores: pl.DataFrame,
    policy: PolicyFile,
    cycles_since_move: Mapping[str, int] | None = None,
) -> PlacementInput:
    """Shards at their share of a host's upper quantile (`pooled_demand`), hosts at their
    lowest forecast supply."""
    cycles_since_move = cycles_since_move or {}
    share = pooled_demand(data, outlook)
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
    hosts = data.hosts.join(outlook.min_supply(), on="host_id", how="left")
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
    )
