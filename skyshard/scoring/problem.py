"""Turns the scored candidates and the outlook into the placement solver's input."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from skyshard.config.policy import PolicyFile
from skyshard.placement import Budget, Dependency, HostSupply, PlacementInput, ShardDemand
from skyshard.placement.constraints import rules_from_config
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


def placement_input(
    data: PlanningData,
    outlook: Outlook,
    scores: pl.DataFrame,
    policy: PolicyFile,
    cycles_since_move: Mapping[str, int] | None = None,
) -> PlacementInput:
    """Shards at their forecast peak upper bound, hosts at their lowest forecast supply."""
    cycles_since_move = cycles_since_move or {}
    peaks = outlook.peak_demand()
    shards = data.shards.join(peaks, on="shard_id", how="left")
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
        rules=rules_from_config([(r.rule, r.fields()) for r in policy.placement_rules]),
    )
