"""Sensor `approved_migrations`: one `migrate_shard` run per approved move (`ops.plan_moves`,
on the state backend), keyed by the move id so ticks and daemon restarts never run a move twice.
Sensor `stuck_migrations`: self-healing; a `migrate_shard` run for every move left unfinished
with a dead lease (its broker was killed or gave up), which resumes it forward or back.
Sensor `missed_routing_pushes`: a `routing_catch_up` run while a host's routing document is out
of date (`ops.routing_backlog`), once per state of that backlog."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import dagster as dg
from duckdb import IOException

from orchestration.jobs import refresh_ledger_mirror
from orchestration.migration_job import MOVE_TAG, migrate_shard, routing_catch_up
from orchestration.resources import DuckDBFile
from skyshard.broker.ops_tables import MigrationRow, OpsStore
from skyshard.db import WriterLockTimeout
from skyshard.plans.status import MoveStatus
from skyshard.plans.statuses import PlanStatuses
from skyshard.storage.state import state_url

T = TypeVar("T")
RECOVERY_TAG = "skyshard/recovery"

PROVIDERS = ("move_id", "from_provider_id", "to_provider_id")


class PlanNotReadable(Exception):
    """The plan cannot be read this tick: no DuckDB file yet, or the state is busy."""


def _ops(db_path: str, read: Callable[[str], T]) -> T:
    """`read(db_path)` on the operational state (`SKYSHARD_STATE_URL`, else the DuckDB file);
    PlanNotReadable when it cannot run now."""
    if state_url() is None and not Path(db_path).exists():
        raise PlanNotReadable(f"no DuckDB file at {db_path} yet")
    try:
        return read(db_path)
    except (IOException, WriterLockTimeout) as error:
        raise PlanNotReadable(
            f"{db_path} is locked by a writer; checking again next tick ({error})"
        ) from None


def approved_moves(db_path: str) -> list[tuple[str, str, str]]:
    """(move id, from provider, to provider) of every approved move, oldest decision first."""
    # No wait on the embedded file: a writer holding it skips this tick, the next one asks again.
    approved = _ops(db_path, lambda path: PlanStatuses(path, wait_s=0).moves([MoveStatus.APPROVED]))
    return approved.select(PROVIDERS).rows()


def move_run_request(
    move_id: str, from_provider: str, to_provider: str, recovery_key: str | None = None
) -> dg.RunRequest:
    """The run of a newly approved move (run key: the move id), or with `recovery_key` a
    recovery run (tagged `skyshard/recovery`)."""
    recovery = {RECOVERY_TAG: "true"} if recovery_key else {}
    return dg.RunRequest(
        run_key=recovery_key or move_id,
        run_config=dg.RunConfig(ops={"migrate": {"config": {"move_id": move_id}}}),
        tags={
            MOVE_TAG: move_id,
            "skyshard/from_provider": from_provider,
            "skyshard/to_provider": to_provider,
            "skyshard/provider": to_provider,
            **recovery,
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


def unfinished_moves(db_path: str) -> list[tuple[MigrationRow, str, str]]:
    """Moves of the plan left non-terminal with a dead lease, with their providers."""
    stuck = _ops(db_path, lambda path: OpsStore(path).stuck_moves())
    if not stuck:
        return []
    planned = _ops(db_path, lambda path: PlanStatuses(path, wait_s=0).moves())
    providers = {
        move_id: (source, target) for move_id, source, target in planned.select(PROVIDERS).rows()
    }
    return [(row, *providers[row.move_id]) for row in stuck if row.move_id in providers]


@dg.sensor(
    job=migrate_shard,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Self-healing: resumes every move left unfinished with a dead lease (its broker "
    "was killed or gave up), forward or back per the protocol.",
)
def stuck_migrations(context: dg.SensorEvaluationContext, duckdb: DuckDBFile):
    try:
        stuck = unfinished_moves(duckdb.path)
    except PlanNotReadable as reason:
        return dg.SkipReason(str(reason))
    if not stuck:
        return dg.SkipReason("no unfinished move without a live broker")
    requests = []
    for row, source, target in stuck:
        context.log.warning(
            f"move {row.move_id}: {row.status} at phase {row.phase} with no live lease; resuming"
        )
        # A new key per state of the move: a recovery that changed nothing is not asked again,
        # one that made progress and stopped again is.
        key = f"recover:{row.move_id}:{row.attempt}:{row.updated_at.isoformat()}"
        requests.append(move_run_request(row.move_id, source, target, recovery_key=key))
    return dg.SensorResult(run_requests=requests)


@dg.sensor(
    job=routing_catch_up,
    minimum_interval_seconds=120,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retries routing pushes a host missed (ops.routing_backlog) with a "
    "routing_catch_up run, once per state of the backlog.",
)
def missed_routing_pushes(context: dg.SensorEvaluationContext, duckdb: DuckDBFile):
    try:
        backlog = _ops(duckdb.path, lambda path: OpsStore(path).routing_backlog())
    except PlanNotReadable as reason:
        return dg.SkipReason(str(reason))
    if not backlog:
        return dg.SkipReason("every host has the current routing document")
    # A run that missed again adds an attempt, so the next tick asks once more.
    key = "routing:" + ",".join(
        f"{m.host_id}@{m.missed_at.isoformat()}#{m.attempts}" for m in backlog
    )
    context.log.warning(f"routing out of date on {', '.join(m.host_id for m in backlog)}")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=key)])


def _mirror_after_migration(status: dg.DagsterRunStatus) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        name=f"ledger_mirror_after_migration_{status.value.lower()}",
        run_status=status,
        monitored_jobs=[migrate_shard],
        request_job=refresh_ledger_mirror,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Refreshes the ledger's SQL mirror with the migration's entries.",
    )
    def mirror_sensor(context: dg.RunStatusSensorContext):
        return dg.RunRequest(run_key=f"mirror-{context.dagster_run.run_id}")

    return mirror_sensor


defs = dg.Definitions(
    sensors=[
        approved_migrations,
        stuck_migrations,
        missed_routing_pushes,
        _mirror_after_migration(dg.DagsterRunStatus.SUCCESS),
        _mirror_after_migration(dg.DagsterRunStatus.FAILURE),
    ],
)
