"""Migration plans: the planning cycle, deterministic ids, move statuses and approvals (on the
state backend), and the `plan` schema in DuckDB."""

from __future__ import annotations

from skyshard.lazy import lazy_exports

EXPORTS = {
    "AUTO_APPROVER": "build",
    "MoveStatus": "status",
    "PLAN_SCHEMA": "build",
    "PlanError": "status",
    "PlanStatuses": "statuses",
    "PlanningCycle": "cycle",
    "RUN_SCHEMA": "build",
    "TRANSITIONS": "status",
    "assess": "cycle",
    "build_plan": "build",
    "cycles_since_move": "store",
    "ensure_plan_schema": "store",
    "inputs_hash": "ids",
    "list_moves": "store",
    "move_id": "ids",
    "plan_cycle": "cycle",
    "plan_run_id": "ids",
    "write_bottlenecks": "store",
    "write_candidate_scores": "store",
    "write_plan": "store",
}
__getattr__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)
