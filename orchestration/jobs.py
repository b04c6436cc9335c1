"""Jobs and schedules that operators run from the Dagster UI or the CLI."""

import dagster as dg

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

defs = dg.Definitions(
    jobs=[ingest_and_build, planning_cycle, refresh_ledger_mirror],
    schedules=[hourly_ingest, planning_every_4h],
)
