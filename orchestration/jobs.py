"""Jobs and schedules that operators run from the Dagster UI or the CLI."""

import dagster as dg

ingest_and_build = dg.define_asset_job(
    name="ingest_and_build",
    selection=dg.AssetSelection.groups("ingestion", "features"),
    description="Ingest every telemetry feed into DuckDB, then build the dbt feature models.",
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
)

hourly_ingest = dg.ScheduleDefinition(
    name="hourly_ingest",
    job=ingest_and_build,
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

planning_every_4h = dg.ScheduleDefinition(
    name="planning_every_4h",
    job=planning_cycle,
    cron_schedule="23 */4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

defs = dg.Definitions(
    jobs=[ingest_and_build, planning_cycle], schedules=[hourly_ingest, planning_every_4h]
)
