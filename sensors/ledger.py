"""Run status sensors: every Dagster run, in every code location, leaves run_started and
run_succeeded / run_failed entries in the trust ledger (once per run and event)."""

import dagster as dg

from orchestration.resources import LedgerResource
from skyshard.trust import EntryType, Ledger
from skyshard.trust.recorder import record_run_event


def _asset_keys(context: dg.RunStatusSensorContext, materialized: bool) -> list[str]:
    """The run's selected assets, plus (once it ended) those it actually materialized."""
    run = context.dagster_run
    keys = {key.to_user_string() for key in run.asset_selection or ()}
    if materialized:
        records = context.instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        keys |= {
            r.event_log_entry.dagster_event.asset_key.to_user_string()
            for r in records
            if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.asset_key
        }
    return sorted(keys)


def _record(context: dg.RunStatusSensorContext, event: EntryType, ledger: Ledger) -> None:
    run = context.dagster_run
    error = None
    if event == EntryType.RUN_FAILED:
        error = context.dagster_event.message or "run failed"
    entry = record_run_event(
        event,
        run.run_id,
        run.job_name,
        run.tags,
        _asset_keys(context, materialized=event != EntryType.RUN_STARTED),
        error=error,
        ledger=ledger,
    )
    if entry is None:
        context.log.info(f"{event.value} of run {run.run_id} is already in the ledger")
    else:
        context.log.info(f"{event.value} of run {run.run_id} appended as ledger entry {entry.seq}")


def _sensor(status: dg.DagsterRunStatus, event: EntryType) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        name=f"ledger_{event.value}",
        run_status=status,
        monitor_all_code_locations=True,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Appends a {event.value} entry to the trust ledger for every run.",
    )
    def ledger_sensor(context: dg.RunStatusSensorContext, ledger: LedgerResource):
        _record(context, event, ledger.open())

    return ledger_sensor


ledger_run_started = _sensor(dg.DagsterRunStatus.STARTED, EntryType.RUN_STARTED)
ledger_run_succeeded = _sensor(dg.DagsterRunStatus.SUCCESS, EntryType.RUN_SUCCEEDED)
ledger_run_failed = _sensor(dg.DagsterRunStatus.FAILURE, EntryType.RUN_FAILED)

defs = dg.Definitions(sensors=[ledger_run_started, ledger_run_succeeded, ledger_run_failed])
