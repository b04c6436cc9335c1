"""Jobs and schedules that operators run from the Dagster UI or the CLI."""

import dagster as dg

from assets.ingestion import SKY_CONFIG_KEYS
from orchestration.executors import scale_out_executor

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


def scale_out_defs() -> dg.Definitions:
    """The scale-out location's cycle, in this order: a job cannot mix partitioned and
    unpartitioned assets, so the two partitioned stages are jobs of their own, launched as
    backfills (one run per partition) whose steps the executor spreads over workers. No
    schedule yet."""
    executor = scale_out_executor()
    jobs = [
        dg.define_asset_job(
            name="ingest_feeds",
            selection=TELEMETRY,
            description="Ingest one telemetry feed per partition.",
            executor_def=executor,
        ),
        dg.define_asset_job(
            name="build_features",
            selection=dg.AssetSelection.groups("ingestion", "features") - TELEMETRY,
            description="Write the configured sky and build the dbt feature models (after "
            "`ingest_feeds`).",
            config=IN_PROCESS,
        ),
        dg.define_asset_job(
            name="forecast_groups",
            selection=FORECASTS,
            description="Forecast one shard group per partition (after `build_features`).",
            executor_def=executor,
        ),
        dg.define_asset_job(
            name="plan_from_forecasts",
            selection=dg.AssetSelection.groups("forecasts", "trust", "planning")
            - FORECASTS
            - dg.AssetSelection.assets(dg.AssetKey(["plan", "policy_backtest"])),
            description="Bottlenecks, trust scores and the migration plan from the stored "
            "forecasts (after every `forecast_groups` partition).",
            config=IN_PROCESS,
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
