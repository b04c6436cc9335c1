"""Job `migrate_shard`: one op that runs one approved move over SSH (see docs/migrations.md).
Job `routing_catch_up`: the current routing document to every host that missed a push."""

import dagster as dg
from pydantic import Field

from assets.routing import ROUTING
from orchestration.resources import DuckDBFile, LedgerResource, SkyResource
from skyshard.broker.execute import (
    MoveResult,
    ProgressLog,
    describe_step,
    is_transient,
    push_missed_routing,
    run_configured_move,
)
from skyshard.broker.migration import COMMITTED
from skyshard.config.sky import Sky
from skyshard.ledger import Ledger
from skyshard.plans.statuses import MOVE_ID, check_move_id

MAX_RETRIES = 2
# For transient network failures only: the op raises TransientMigrationError for those and a
# non-retryable Failure for everything else; a retry passes retry=True to the Migrator.
RETRY_POLICY = dg.RetryPolicy(
    max_retries=MAX_RETRIES, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
MOVE_TAG = "skyshard/move_id"


class MoveConfig(dg.Config):
    # Checked in the op (check_move_id), not by a pydantic pattern: a pattern failure would
    # surface inside the step and be retried like a network error.
    move_id: str = Field(
        description=f"Id of an approved move in plan.migration_plan ({MOVE_ID.pattern})."
    )


class TransientMigrationError(Exception):
    """The move rolled back (or stopped) on a network error; the retry policy tries again."""


def _metadata(result: MoveResult) -> dict[str, dg.MetadataValue]:
    outcome = result.outcome
    return {
        "move_id": dg.MetadataValue.text(outcome.move_id),
        "shard_id": dg.MetadataValue.text(result.move.shard_id),
        "route": dg.MetadataValue.text(f"{result.move.from_host} -> {result.move.to_host}"),
        "outcome": dg.MetadataValue.text(outcome.status),
        "plan_status": dg.MetadataValue.text(result.plan_status),
        "phase": dg.MetadataValue.text(outcome.phase),
        "attempt": dg.MetadataValue.int(outcome.attempt),
        "bytes_sent": dg.MetadataValue.int(outcome.bytes_sent),
        "rounds": dg.MetadataValue.int(outcome.rounds),
        "downtime_ms": dg.MetadataValue.float(float(outcome.downtime_ms or 0.0)),
        "error": dg.MetadataValue.text(outcome.error or ""),
        "noop": dg.MetadataValue.bool(outcome.noop),
    }


def routing_event(result: MoveResult) -> dg.AssetMaterialization | dg.AssetObservation:
    """What this run did to `ops.routing`: a materialization when it switched the shard's route
    (the commit point), an observation of where the shard stays otherwise."""
    switched = result.outcome.phase in COMMITTED and not result.outcome.noop
    metadata = {
        "move_id": result.outcome.move_id,
        "shard_id": result.move.shard_id,
        "host_id": result.move.to_host if switched else "(unchanged)",
        "phase": result.outcome.phase,
    }
    if switched:
        return dg.AssetMaterialization(ROUTING.key, metadata=metadata)
    return dg.AssetObservation(ROUTING.key, metadata=metadata)


def _run_move(
    context: dg.OpExecutionContext, move_id: str, db_path: str, sky: Sky, ledger: Ledger
) -> MoveResult:
    return run_configured_move(
        db_path,
        move_id,
        sky,
        run_id=context.run_id,
        ledger=ledger,
        retry=context.retry_number > 0,
        final_attempt=context.retry_number >= MAX_RETRIES,
        on_progress=ProgressLog(context.log.info),
        on_step=lambda step: context.log.info(describe_step(step)),
    )


@dg.op(
    retry_policy=RETRY_POLICY,
    description="Migrate one shard for an approved move; never holds the DuckDB write lock.",
)
def migrate(
    context: dg.OpExecutionContext,
    config: MoveConfig,
    duckdb: DuckDBFile,
    sky: SkyResource,
    ledger: LedgerResource,
):
    try:
        result = _run_move(
            context, check_move_id(config.move_id), duckdb.path, sky.load(), ledger.open()
        )
    except Exception as error:  # refusals before any migration (config, plan): never retried
        if is_transient(error):
            raise
        raise dg.Failure(f"move {config.move_id}: {error}", allow_retries=False) from error
    context.log_event(routing_event(result))
    if result.retryable:
        raise TransientMigrationError(
            f"move {config.move_id} attempt {result.outcome.attempt}: {result.outcome.error}"
        )
    metadata = _metadata(result)
    if not result.succeeded:
        unfinished = result.plan_status == "running"  # stopped after the commit point
        raise dg.Failure(
            description=(
                f"move {config.move_id} ended {result.outcome.status!r} "
                f"(plan status {result.plan_status!r}): {result.outcome.error}"
                + ("; the shard runs on the target: re-execute to finish" if unfinished else "")
            ),
            metadata=metadata,
            allow_retries=False,
        )
    return dg.Output(None, metadata=metadata)


@dg.job(
    description="Migrate one shard for an approved move (requested by the approved_migrations "
    "sensor, one run per move id).",
    tags={"skyshard/kind": "migration"},
)
def migrate_shard():
    migrate()


@dg.op(description="Push the current routing document to every host in ops.routing_backlog.")
def push_missed(
    context: dg.OpExecutionContext, duckdb: DuckDBFile, sky: SkyResource, ledger: LedgerResource
):
    results = push_missed_routing(duckdb.path, sky.load(), run_id=context.run_id,
                                  ledger=ledger.open())  # fmt: skip
    missed = {host_id: error for host_id, error in results.items() if error}
    metadata = {
        "delivered": dg.MetadataValue.text(", ".join(sorted(set(results) - set(missed)))),
        "missed": dg.MetadataValue.json(missed),
    }
    if missed:
        raise dg.Failure(
            description="routing still out of date on "
            + "; ".join(f"{host_id}: {error}" for host_id, error in sorted(missed.items())),
            metadata=metadata,
        )
    return dg.Output(None, metadata=metadata)


@dg.job(
    description="Push the current routing document to the hosts that missed one (requested by "
    "the missed_routing_pushes sensor).",
    tags={"skyshard/kind": "routing"},
)
def routing_catch_up():
    push_missed()


defs = dg.Definitions(jobs=[migrate_shard, routing_catch_up])
