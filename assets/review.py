"""The review flow in the UI: one dynamic partition of `proposed_moves` per move still open to a
decision, each partition's materialization showing the move's score terms, and the partitioned
`review_plan` job that approves or rejects the move picked as its partition."""

from enum import Enum

import dagster as dg
import polars as pl
from pydantic import Field

from orchestration.resources import DuckDBFile, LedgerResource
from skyshard.plans import PlanError, PlanStatuses
from skyshard.plans.status import MoveStatus
from skyshard.trust.events import record_operator_decision

GROUP = "planning"
REVIEWABLE = (MoveStatus.PROPOSED.value, MoveStatus.APPROVED.value)
proposed_moves_partitions = dg.DynamicPartitionsDefinition(name="proposed_moves")

proposed_moves = dg.AssetSpec(
    "proposed_moves",
    group_name=GROUP,
    deps=[dg.AssetKey(["plan", "migration_plan"])],
    partitions_def=proposed_moves_partitions,
    kinds={"duckdb"},
    description="One partition per move open to a decision (proposed, or approved and not yet "
    "running): its materialization shows the route, the reason and each score term on the "
    "current host and the target. Launch `review_plan` on a partition to decide it.",
)


def reviewable_move_ids(duckdb: DuckDBFile) -> list[str]:
    return sorted(PlanStatuses(duckdb.path).moves(REVIEWABLE)["move_id"])


def sync_partitions(instance: dg.DagsterInstance, open_ids: list[str]) -> None:
    """The partitions become exactly the moves open to a decision, so the launchpad's picker
    offers nothing already decided or superseded."""
    name = proposed_moves_partitions.name
    known = set(instance.get_dynamic_partitions(name))
    for gone in sorted(known - set(open_ids)):
        instance.delete_dynamic_partition(name, gone)
    instance.add_dynamic_partitions(name, [m for m in open_ids if m not in known])


def move_metadata(move: dict, terms: pl.DataFrame) -> dict[str, dg.MetadataValue]:
    """What a reviewer needs to decide one move, with each score term as a number."""
    metadata: dict[str, dg.MetadataValue] = {
        "shard": dg.MetadataValue.text(move["shard_id"]),
        "route": dg.MetadataValue.text(
            f"{move['from_host_id']} ({move['from_provider_id']}) -> "
            f"{move['to_host_id']} ({move['to_provider_id']})"
        ),
        "reason": dg.MetadataValue.text(f"{move['reason']}: {move['reason_detail']}"),
        "status": dg.MetadataValue.text(move["status"]),
        "saving_per_day": dg.MetadataValue.float(round(move["saving_per_day"] or 0.0, 4)),
        "risk": dg.MetadataValue.float(round(move["risk"], 4)),
        "downtime_s": dg.MetadataValue.float(round(move["downtime_s"], 1)),
        "estimated_gib": dg.MetadataValue.float(round(move["estimated_bytes"] / 1024**3, 2)),
    }
    for term, current, target, saving in terms.select(
        "term", "from_cost", "to_cost", "saving"
    ).iter_rows():
        metadata[f"saving/{term}"] = dg.MetadataValue.float(round(saving, 4))
        metadata[f"cost/{term}"] = dg.MetadataValue.text(f"{current:,.4g} -> {target:,.4g}")
    return metadata


def report_proposed_moves(
    context: dg.AssetExecutionContext, duckdb: DuckDBFile, plan: pl.DataFrame, terms: pl.DataFrame
) -> None:
    """Sync the partitions with the stored plan and record one materialization per move of
    this cycle that is open to a decision."""
    open_ids = reviewable_move_ids(duckdb)
    sync_partitions(context.instance, open_ids)
    for move in plan.filter(pl.col("move_id").is_in(open_ids)).iter_rows(named=True):
        context.log_event(
            dg.AssetMaterialization(
                asset_key=proposed_moves.key,
                partition=move["move_id"],
                description=f"{move['shard_id']}: {move['from_host_id']} -> {move['to_host_id']}",
                metadata=move_metadata(move, terms.filter(pl.col("move_id") == move["move_id"])),
            )
        )


class Decision(Enum):
    approve = MoveStatus.APPROVED.value
    reject = MoveStatus.REJECTED.value


class ReviewDecision(dg.Config):
    decision: Decision = Field(
        description="approve: the approved_migrations sensor starts migrate_shard for the move "
        "within a minute. reject: the move is never run."
    )
    by: str = Field(
        description="Who decides: your name or id (1-64 letters, digits or _ . @ : + -); "
        "stored with the decision."
    )
    reason: str | None = Field(
        default=None, description="Why (optional, at most 500 characters); stored as well."
    )


@dg.op
def review_move(
    context: dg.OpExecutionContext,
    config: ReviewDecision,
    duckdb: DuckDBFile,
    ledger: LedgerResource,
):
    """Approve or reject the move picked as this run's partition; a bad identity or transition
    fails the run and changes nothing."""
    move_id = context.partition_key
    try:
        statuses = PlanStatuses(duckdb.path)
        row = statuses.decide(move_id, config.decision.value, config.by, config.reason)
    except PlanError as error:
        raise dg.Failure(f"review of {move_id}: {error}", allow_retries=False) from None
    via = f"dagster:review_plan run {context.run_id}"
    record_operator_decision(
        row, config.decision.value, config.by, config.reason, via, ledger.open()
    )
    sync_partitions(context.instance, reviewable_move_ids(duckdb))
    context.log.info(f"{row['move_id']} ({row['shard_id']}) is now {row['status']} by {config.by}")
    return dg.Output(
        None,
        metadata={
            "move_id": move_id,
            "shard": row["shard_id"],
            "status": row["status"],
            "by": config.by,
        },
    )


@dg.job(
    partitions_def=proposed_moves_partitions,
    description="Review one proposed move: pick it as the partition (see the `proposed_moves` "
    "asset for its score terms), then choose approve or reject and say who you are.",
    tags={"skyshard/kind": "review"},
)
def review_plan():
    review_move()


defs = dg.Definitions(assets=[proposed_moves], jobs=[review_plan])
