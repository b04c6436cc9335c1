"""Sensor `approved_migrations`: one `migrate_shard` run per approved move in
`plan.migration_plan`, keyed by the move id so ticks and daemon restarts never run a move twice."""

import json
from pathlib import Path

import dagster as dg
from duckdb import CatalogException, IOException

from orchestration.migration_job import MOVE_TAG, migrate_shard
from orchestration.resources import DuckDBFile
from skyshard.db import connect

APPROVED_SQL = """
    SELECT move_id, from_provider_id, to_provider_id FROM plan.migration_plan
    WHERE status = 'approved' ORDER BY decided_at NULLS LAST, move_id
"""


class PlanNotReadable(Exception):
    """The plan cannot be read this tick: no DuckDB file or plan yet, or a writer holds it."""


def approved_moves(db_path: str) -> list[tuple[str, str, str]]:
    """(move id, from provider, to provider) of every approved move, in a short read-only
    connection."""
    if not Path(db_path).exists():
        raise PlanNotReadable(f"no DuckDB file at {db_path} yet")
    try:
        with connect(db_path, read_only=True, wait_s=0) as con:  # next tick will retry
            return [tuple(row) for row in con.execute(APPROVED_SQL).fetchall()]
    except CatalogException:
        raise PlanNotReadable(
            "no plan.migration_plan table yet (run the planning cycle first)"
        ) from None
    except IOException as error:
        if "lock" not in str(error):
            raise
        raise PlanNotReadable(
            f"{db_path} is locked by a writer; checking again next tick ({error})"
        ) from None


def move_run_request(move_id: str, from_provider: str, to_provider: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=move_id,
        run_config=dg.RunConfig(ops={"migrate": {"config": {"move_id": move_id}}}),
        tags={
            MOVE_TAG: move_id,
            "skyshard/from_provider": from_provider,
            "skyshard/to_provider": to_provider,
            "skyshard/provider": to_provider,
        },
    )


@dg.sensor(
    job=migrate_shard,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a migrate_shard run for every approved move (run key: the move id).",
)
def approved_migrations(context: dg.SensorEvaluationContext, duckdb: DuckDBFile):
    try:
        found = approved_moves(duckdb.path)
    except PlanNotReadable as reason:
        return dg.SkipReason(str(reason))
    # The cursor lists the approved moves already requested (their runs may still wait in the
    # queue), so it stays as small as the approved backlog; run keys dedupe across restarts.
    requested = set(json.loads(context.cursor)) if context.cursor else set()
    new = [move for move in found if move[0] not in requested]
    cursor = json.dumps(sorted(move_id for move_id, _, _ in found))
    if not new:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"{len(found)} approved move(s), all requested before"),
            cursor=cursor,
        )
    return dg.SensorResult(run_requests=[move_run_request(*move) for move in new], cursor=cursor)


defs = dg.Definitions(sensors=[approved_migrations])
