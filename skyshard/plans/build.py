"""Turns a placement result into plan rows: one per move with its reason, saving, risk, bytes
and downtime, approved automatically where the policy allows; and the plan run's summary row."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from skyshard.plans.ids import move_id, plan_run_id
from skyshard.plans.status import MoveStatus
from skyshard.scoring.bottlenecks import CAPACITY_LOSS, DEMAND, INCIDENT, PRICE

if TYPE_CHECKING:  # annotations only: importing them would load pydantic and the solver
    from skyshard.config.policy import PolicyFile
    from skyshard.placement import Move, PlacementResult

AUTO_APPROVER = "policy:auto_approve"

PLAN_SCHEMA = {
    "move_id": pl.String,
    "plan_run_id": pl.String,
    "created_at": pl.Datetime("us"),
    "shard_id": pl.String,
    "from_host_id": pl.String,
    "from_provider_id": pl.String,
    "to_host_id": pl.String,
    "to_provider_id": pl.String,
    "reason": pl.String,
    "reason_detail": pl.String,
    "saving_per_day": pl.Float64,
    "risk": pl.Float64,
    "estimated_bytes": pl.Int64,
    "downtime_s": pl.Float64,
    "status": pl.String,
    "approval_mode": pl.String,
    "approved_by": pl.String,
    "decided_at": pl.Datetime("us"),
    "decision_note": pl.String,
}
RUN_SCHEMA = {
    "plan_run_id": pl.String,
    "created_at": pl.Datetime("us"),
    "inputs_hash": pl.String,
    "as_of": pl.Datetime("us"),
    "horizon_h": pl.Int64,
    "solver": pl.String,
    "solver_status": pl.String,
    "gap": pl.Float64,
    "objective": pl.Float64,
    "lp_bound": pl.Float64,
    "moves": pl.Int64,
    "auto_approved": pl.Int64,
    "solve_seconds": pl.Float64,
    "explanation": pl.String,
}
# Bottleneck cause -> plan reason, most urgent first.
_CAUSE_REASON = {
    INCIDENT: "incident",
    DEMAND: "bottleneck",
    CAPACITY_LOSS: "bottleneck",
    PRICE: "cost",
}


def move_reason(move: Move, causes: list[tuple[str, str]]) -> tuple[str, str]:
    """(reason, detail): reason is bottleneck, cost, trust, incident or policy."""
    details = [move.reason, *(detail for _, detail in causes)]
    detail = "; ".join(details)
    if move.reason.startswith("blocked:"):
        if "trust" in move.reason:
            return "trust", detail
        if "price cap" in move.reason:
            return "cost", detail
        return "policy", detail
    for cause in _CAUSE_REASON:
        if any(c == cause for c, _ in causes):
            return _CAUSE_REASON[cause], detail
    if move.reason == "overloaded":
        return "bottleneck", detail
    return "cost", detail


def auto_approves(policy: PolicyFile, saving_per_day: float | None, risk: float) -> bool:
    rule = policy.planning.auto_approve
    return (
        rule.enabled
        and saving_per_day is not None
        and saving_per_day >= rule.min_saving_per_day
        and risk <= rule.max_risk
    )


def build_plan(
    result: PlacementResult,
    scores: pl.DataFrame,
    bottlenecks: pl.DataFrame,
    policy: PolicyFile,
    inputs: str,
    horizon_h: int,
    created_at: datetime,
) -> pl.DataFrame:
    """One row per move in `result` (columns PLAN_SCHEMA), status proposed or auto-approved."""
    run_id = plan_run_id(inputs)
    target = {
        (r["shard_id"], r["host_id"]): r
        for r in scores.filter(
            pl.col("shard_id").is_in([m.shard_id for m in result.moves])
        ).iter_rows(named=True)
    }
    causes: dict[str, list[tuple[str, str]]] = {}
    for row in bottlenecks.iter_rows(named=True):
        causes.setdefault(row["shard_id"], []).append((row["cause"], row["detail"]))
    rows = []
    for move in result.moves:
        to = target[(move.shard_id, move.to_host)]
        source = target.get((move.shard_id, move.from_host))
        # what the move saves includes the overload it alone takes off the host it leaves
        relief = float(source["overload_relief"] or 0.0) if source else 0.0
        saving = None if move.saving is None else (move.saving + relief) * 24 / horizon_h
        risk = float(to["risk"])
        reason, detail = move_reason(move, causes.get(move.shard_id, []))
        auto = auto_approves(policy, saving, risk)
        rows.append(
            {
                "move_id": move_id(move.shard_id, move.from_host, move.to_host, inputs),
                "plan_run_id": run_id,
                "created_at": created_at,
                "shard_id": move.shard_id,
                "from_host_id": move.from_host,
                "from_provider_id": source["provider_id"] if source else None,
                "to_host_id": move.to_host,
                "to_provider_id": to["provider_id"],
                "reason": reason,
                "reason_detail": detail,
                "saving_per_day": saving,
                "risk": risk,
                "estimated_bytes": int(to["estimated_bytes"]),
                "downtime_s": float(to["downtime_s"]),
                "status": (MoveStatus.APPROVED if auto else MoveStatus.PROPOSED).value,
                "approval_mode": "auto" if auto else "manual",
                "approved_by": AUTO_APPROVER if auto else None,
                "decided_at": created_at if auto else None,
                "decision_note": "saving and risk within policy.planning.auto_approve"
                if auto
                else None,
            }
        )
    return pl.DataFrame(rows, schema=PLAN_SCHEMA, orient="row").sort("move_id")


def plan_run_row(
    result: PlacementResult,
    plan: pl.DataFrame,
    stuck: list[str],
    inputs: str,
    as_of: datetime,
    horizon_h: int,
    created_at: datetime,
) -> pl.DataFrame:
    auto = plan.filter(pl.col("approval_mode") == "auto").height
    return pl.DataFrame(
        [
            {
                "plan_run_id": plan_run_id(inputs),
                "created_at": created_at,
                "inputs_hash": inputs,
                "as_of": as_of,
                "horizon_h": horizon_h,
                "solver": result.solver,
                "solver_status": str(result.status),
                "gap": result.gap,
                "objective": result.objective,
                "lp_bound": result.lp_bound,
                "moves": plan.height,
                "auto_approved": auto,
                "solve_seconds": result.build_seconds + result.solve_seconds,
                "explanation": "\n".join(
                    [
                        *result.explanation,
                        *(f"shard {s} has no allowed host; it stays where it is" for s in stuck),
                    ]
                ),
            }
        ],
        schema=RUN_SCHEMA,
        orient="row",
    )
