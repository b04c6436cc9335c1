"""The policy decisions a planning run makes, as contract decisions for the trust ledger.

Recording every shard × host filter would flood the ledger (2 M candidates at 10,000 × 200),
so a run records one decision per proposed move (auto-approved or held for a person) and one
summary of the candidates the policy blocked, each with the policy's hash."""

from __future__ import annotations

import polars as pl

from skyshard.config.policy import PolicyFile
from skyshard.trust.contracts import Decision, policy_hash


def plan_decisions(
    policy: PolicyFile, plan_run_id: str, plan: pl.DataFrame, scores: pl.DataFrame
) -> list[Decision]:
    digest = policy_hash(policy)
    rule = policy.planning.auto_approve
    decisions = [
        Decision(
            kind="auto_approval",
            allowed=move["approval_mode"] == "auto",
            subject={
                "plan_run_id": plan_run_id,
                "move_id": move["move_id"],
                "shard_id": move["shard_id"],
                "to_provider_id": move["to_provider_id"],
                "saving_per_day": move["saving_per_day"],
                "risk": move["risk"],
            },
            reasons=(
                f"auto_approve enabled={rule.enabled}, min_saving_per_day="
                f"{rule.min_saving_per_day}, max_risk={rule.max_risk}",
            ),
            policy_hash=digest,
        )
        for move in plan.iter_rows(named=True)
    ]
    blocked = (
        scores.filter(~pl.col("allowed"))
        .group_by("blocked_by")
        .agg(pl.len().alias("candidates"))
        .sort("blocked_by")
    )
    decisions.append(
        Decision(
            kind="placement_filter",
            allowed=True,
            subject={
                "plan_run_id": plan_run_id,
                "candidates": scores.height,
                "blocked": {
                    row["blocked_by"]: row["candidates"] for row in blocked.iter_rows(named=True)
                },
            },
            reasons=("data class, minimum trust, allowed providers and regions, price caps",),
            policy_hash=digest,
        )
    )
    return decisions
