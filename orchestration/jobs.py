"""Jobs and schedules that operators run from the Dagster UI or the CLI."""

from typing import TYPE_CHECKING

import dagster as dg

from assets.ingestion import SKY_CONFIG_KEYS
from orchestration.executors import scale_out_executor

if TYPE_CHECKING:  # what define_asset_job returns; dagster does not export the name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

# Every step writes DuckDB and the writer pool runs them one at a time anyway, so a process per
# step only adds start-up time (bench/bench_cycle_overhead.py). In-process is the default; the
# launchpad can still pick `multiprocess`.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}

ingest_and_build = dg.define_asset_job(
    name="ingest_and_build",
    selection=dg.AssetSelection.groups("ingestion", "features"),
    description="Ingest every telemetry feed into DuckDB, then build the dbt feature models.",
    config=IN_PROCESS,
)

planning_cycle = dg.define_asset_job(
    name="planning_cycle",
    # The policy backtest replays the whole planning cycle once per step of its window: it is
    # launched on its own (UI or `skyshard backtest`), not every cycle.
    selection=dg.AssetSelection.groups("ingestion", "features", "forecasts", "trust", "planning")
    - dg.AssetSelection.assets(dg.AssetKey(["plan", "policy_backtest"])),
    description=(
        "The whole cycle: ingest, build features, forecast, score trust, and propose a "
        "migration plan (approved moves are picked up by the migration sensor)."
    ),
    config=IN_PROCESS,
)

refresh_ledger_mirror = dg.define_asset_job(
    name="refresh_ledger_mirror",
    selection=dg.AssetSelection.assets(dg.AssetKey(["ledger", "entries"])),
    description="Mirror the verified ledger into DuckDB (requested after every migration).",
)

hourly_ingest = dg.ScheduleDefinition(
    name="hourly_ingest",
    job=ingest_and_build,
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    description="Ingest and build features at minute 7 of every hour (UTC).",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

planning_every_4h = dg.ScheduleDefinition(
    name="planning_every_4h",
    job=planning_cycle,
    cron_schedule="23 */4 * * *",
    execution_timezone="UTC",
    description="The whole planning cycle at minute 23 of every 4th hour (UTC); the plan's "
    "moves then wait for review.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

TELEMETRY = dg.AssetSelection.groups("ingestion") - dg.AssetSelection.assets(*SKY_CONFIG_KEYS)
FORECASTS = dg.AssetSelection.assets(dg.AssetKey(["forecast", "forecasts"]))


def _stage(
    name: str,
    selection: dg.AssetSelection,
    description: str,
    executor: dg.ExecutorDefinition | None = None,
) -> "UnresolvedAssetJobDefinition":
    """A job of the scale-out cycle: a partitioned stage on `executor` (its steps spread over
    workers), the others in process like the embedded location's jobs."""
    placement = {"executor_def": executor} if executor else {"config": IN_PROCESS}
    return dg.define_asset_job(name=name, selection=selection, description=description, **placement)


def scale_out_defs() -> dg.Definitions:
    """The scale-out location's cycle, in this order: a job cannot mix partitioned and
    unpartitioned assets, so the two partitioned stages are jobs of their own, launched as
    backfills (one run per partition) whose steps the executor spreads over workers. No
    schedule yet."""
    executor = scale_out_executor()
    jobs = [
        _stage("ingest_feeds", TELEMETRY, "Ingest one telemetry feed per partition.", executor),
        _stage(
            "build_features",
            dg.AssetSelection.groups("ingestion", "features") - TELEMETRY,
            "Write the configured sky and build the dbt feature models (after `ingest_feeds`).",
        ),
        _stage(
            "forecast_groups",
            FORECASTS,
            "Forecast one shard group per partition (after `build_features`).",
            executor,
        ),
        _stage(
            "plan_from_forecasts",
            dg.AssetSelection.groups("forecasts", "trust", "planning")
            - FORECASTS
            - dg.AssetSelection.assets(dg.AssetKey(["plan", "policy_backtest"])),
            "Bottlenecks, trust scores and the migration plan from the stored forecasts (after "
            "every `forecast_groups` partition).",
        ),
    ]
    return dg.Definitions(jobs=[*jobs, refresh_ledger_mirror])


def build_defs(partitioned: bool = False) -> dg.Definitions:
    """The embedded location's jobs and schedules, or (`partitioned`) the scale-out cycle's."""
    if partitioned:
        return scale_out_defs()
    return dg.Definitions(
        jobs=[ingest_and_build, planning_cycle, refresh_ledger_mirror],
        schedules=[hourly_ingest, planning_every_4h],
    )
