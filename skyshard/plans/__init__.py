"""Migration plans: the planning cycle, deterministic ids, move statuses and approvals, and the
`plan` schema in DuckDB."""

from __future__ import annotations

from skyshard.plans.build import AUTO_APPROVER, PLAN_SCHEMA, RUN_SCHEMA, build_plan
from skyshard.plans.cycle import PlanningCycle, assess, plan_cycle
from skyshard.plans.ids import inputs_hash, move_id, plan_run_id
from skyshard.plans.status import TRANSITIONS, MoveStatus, PlanError
from skyshard.plans.store import (
    cycles_since_move,
    decide,
    ensure_plan_schema,
    get_move,
    list_moves,
    write_bottlenecks,
    write_candidate_scores,
    write_plan,
)

__all__ = [
    "AUTO_APPROVER",
    "PLAN_SCHEMA",
    "RUN_SCHEMA",
    "TRANSITIONS",
    "MoveStatus",
    "PlanError",
    "PlanningCycle",
    "assess",
    "build_plan",
    "cycles_since_move",
    "decide",
    "ensure_plan_schema",
    "get_move",
    "inputs_hash",
    "list_moves",
    "move_id",
    "plan_cycle",
    "plan_run_id",
    "write_bottlenecks",
    "write_candidate_scores",
    "write_plan",
]
