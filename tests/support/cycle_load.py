"""A planning writer and an ingestion writer as separate processes (tests, benches), each
through the real store functions: `write_plan` and `PlanStatuses.decide` (plan statuses and
decisions, on the state backend) and
`replace_table` (the sky-config ingestion write), each round in its own short connection.
Run as `python -m tests.support.cycle_load ROLE DB ROUNDS`, ROLE `plan` or `ingest`.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import polars as pl

from skyshard import db
from skyshard.plans.build import PLAN_SCHEMA, RUN_SCHEMA
from skyshard.plans.status import MoveStatus
from skyshard.plans.statuses import PlanStatuses
from skyshard.plans.store import write_plan

MOVES_PER_RUN = 50


def plan_frames(round_index: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One plan run and its moves, every move new (ids carry the round)."""
    at = datetime.now(UTC).replace(tzinfo=None)
    run_id = f"run-{round_index:04d}"
    run = pl.DataFrame(
        [{**dict.fromkeys(RUN_SCHEMA), "plan_run_id": run_id, "created_at": at,
          "moves": MOVES_PER_RUN, "solver": "load"}],
        schema=RUN_SCHEMA,
    )  # fmt: skip
    moves = [
        {**dict.fromkeys(PLAN_SCHEMA), "move_id": f"mv-{round_index:08x}{index:08x}",
         "plan_run_id": run_id, "created_at": at, "shard_id": f"kv-{index}",
         "from_host_id": "host-a", "to_host_id": "host-b", "from_provider_id": "p1",
         "to_provider_id": "p2", "reason": "cost", "saving_per_day": 1.0 + index,
         "risk": 0.1, "status": "proposed", "approval_mode": "manual"}
        for index in range(MOVES_PER_RUN)
    ]  # fmt: skip
    return run, pl.DataFrame(moves, schema=PLAN_SCHEMA)


def plan_rounds(database: str, rounds: int) -> int:
    """`rounds` plan runs, each approving its first move afterwards (on the state backend)."""
    statuses = PlanStatuses(database)
    for index in range(rounds):
        run, plan = plan_frames(index)
        with db.connect(database) as con:
            write_plan(con, statuses, run, plan)
        statuses.decide(plan["move_id"][0], MoveStatus.APPROVED, "load-test")
    return rounds


def ingest_rounds(database: str, rounds: int) -> int:
    """`rounds` replacements of a config-derived raw table, 10,000 rows each."""
    for index in range(rounds):
        frame = pl.DataFrame(
            {"shard_id": [f"kv-{i}" for i in range(10_000)], "round": [index] * 10_000}
        )
        with db.connect(database) as con:
            db.replace_table(con, "raw.load_shards", frame)
    return rounds


if __name__ == "__main__":
    role, database, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print({"plan": plan_rounds, "ingest": ingest_rounds}[role](database, rounds))
