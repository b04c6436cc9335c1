"""Jobs and schedules that operators run from the Dagster UI or the CLI."""

import dagster as dg

ingest_and_build = dg.define_asset_job(
    name="ingest_and_build",
    selection=dg.AssetSelection.groups("ingestion", "features"),
    description="Ingest every telemetry feed into DuckDB, then build the dbt feature models.",
)

hourly_ingest = dg.ScheduleDefinition(
    name="hourly_ingest",
    job=ingest_and_build,
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

defs = dg.Definitions(jobs=[ingest_and_build], schedules=[hourly_ingest])
