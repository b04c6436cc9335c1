"""A two-provider sky on the namespace topology's hosts, and plan rows to migrate in it."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from skyshard.db import connect
from skyshard.plans.build import PLAN_SCHEMA, RUN_SCHEMA
from skyshard.plans.statuses import PlanStatuses
from skyshard.plans.store import write_plan

PROVIDERS = {"host-a": "prov-a", "host-b": "prov-b"}
WORKLOAD = "kv"


WORKLOADS = [{
    "id": WORKLOAD, "resources": {"cpu": 1, "mem_gb": 1}, "shard_size": {"cpu": 1},
    "runtime": {"command": ["demo-kv"]}, "current_hosts": ["host-a"],
}]  # fmt: skip


def add_move(
    db: Path, move_id: str, shard_id: str, status: str = "approved",
    from_host: str = "host-a", to_host: str = "host-b",
) -> None:  # fmt: skip
    """A plan row, proposed and then (unless `status` is 'proposed') decided by a person."""
    run_id = "run-0000000000000000"
    move = {
        **dict.fromkeys(PLAN_SCHEMA), "move_id": move_id, "plan_run_id": run_id,
        "shard_id": shard_id, "from_host_id": from_host, "from_provider_id": PROVIDERS[from_host],
        "to_host_id": to_host, "to_provider_id": PROVIDERS[to_host], "reason": "cost",
        "status": "proposed",
    }  # fmt: skip
    run = pl.DataFrame([{**dict.fromkeys(RUN_SCHEMA), "plan_run_id": run_id}], schema=RUN_SCHEMA)
    statuses = PlanStatuses(db)
    # Only the new move: registering a plan rejects the proposed moves it does not list.
    others = statuses.moves(["proposed"]).to_dicts()
    rows = [move, *({**dict.fromkeys(PLAN_SCHEMA), **other} for other in others)]
    with connect(db) as con:
        write_plan(con, statuses, run, pl.DataFrame(rows, schema=PLAN_SCHEMA))
    if status != "proposed":
        statuses.decide(move_id, status, "alice", "test")


def plan_status(db: Path, move_id: str) -> str:
    return PlanStatuses(db).move(move_id)["status"]


def decisions(db: Path, move_id: str) -> list[tuple[str, str, str]]:
    return [
        (d["from_status"], d["to_status"], d["decided_by"])
        for d in PlanStatuses(db).decisions(move_id)
    ]
