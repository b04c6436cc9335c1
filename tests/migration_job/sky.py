"""A two-provider sky on the namespace topology's hosts, and plan rows to migrate in it."""

from __future__ import annotations

from pathlib import Path

from skyshard.db import connect
from skyshard.plans.store import decide, ensure_plan_schema

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
    with connect(db) as con:
        ensure_plan_schema(con)
        con.execute(
            "INSERT INTO plan.migration_plan (move_id, plan_run_id, created_at, shard_id, "
            "from_host_id, from_provider_id, to_host_id, to_provider_id, reason, status) "
            "VALUES (?, 'run-0000000000000000', now(), ?, ?, ?, ?, ?, 'cost', 'proposed')",
            [move_id, shard_id, from_host, PROVIDERS[from_host], to_host, PROVIDERS[to_host]],
        )
        if status != "proposed":
            decide(con, move_id, status, "alice", "test")


def plan_status(db: Path, move_id: str) -> str:
    with connect(db, read_only=True) as con:
        return con.execute(
            "SELECT status FROM plan.migration_plan WHERE move_id = ?", [move_id]
        ).fetchall()[0][0]


def decisions(db: Path, move_id: str) -> list[tuple[str, str, str]]:
    with connect(db, read_only=True) as con:
        return con.execute(
            "SELECT from_status, to_status, decided_by FROM plan.decisions WHERE move_id = ? "
            "ORDER BY decided_at, rowid",
            [move_id],
        ).fetchall()
