"""Run status sensors: every Dagster run, in every code location, leaves run_started and
run_succeeded / run_failed entries in the trust ledger (once per run and event, started before
outcome), and every finished run is covered by a signed checkpoint, cosigned by the replicas in
policy.yaml that are reachable. A periodic sensor (and `python -m sensors.ledger`, which
`skyshard demo` runs after each job) catches up on runs launched without the daemon."""

import dagster as dg

from orchestration.resources import LedgerResource
from skyshard.config.sky import sky_policy
from skyshard.ledger import Ledger
from skyshard.ledger.replica import cosign_latest
from skyshard.trust.anchors import replica_targets
from skyshard.trust.events import EntryType, record_run_event

CATCH_UP_MINUTES = 60
CATCH_UP_RUNS = 200
_OUTCOMES = {
    dg.DagsterRunStatus.SUCCESS: EntryType.RUN_SUCCEEDED,
    dg.DagsterRunStatus.FAILURE: EntryType.RUN_FAILED,
}


def _asset_keys(instance: dg.DagsterInstance, run: dg.DagsterRun, materialized: bool) -> list[str]:
    """The run's selected assets, plus (once it ended) those it actually materialized."""
    keys = {key.to_user_string() for key in run.asset_selection or ()}
    if materialized:
        records = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        keys |= {
            r.event_log_entry.dagster_event.asset_key.to_user_string()
            for r in records
            if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.asset_key
        }
    return sorted(keys)


def _record(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    event: EntryType,
    error: str | None,
    ledger: Ledger,
) -> str:
    entry = record_run_event(
        event,
        run.run_id,
        run.job_name,
        run.tags,
        _asset_keys(instance, run, materialized=event != EntryType.RUN_STARTED),
        error=error,
        ledger=ledger,
    )
    if entry is None:
        return f"{event.value} of run {run.run_id} is already in the ledger"
    return f"{event.value} of run {run.run_id} appended as ledger entry {entry.seq}"


def checkpoint_and_cosign(ledger: Ledger) -> str:
    """Sign a checkpoint of the whole (verified) log and ask the configured replicas to cosign."""
    size = ledger.checkpoint().split("\n")[1]
    outcomes = cosign_latest(ledger, replica_targets(sky_policy()))
    cosigned = ", ".join(f"{name}: {outcome}" for name, outcome in outcomes.items())
    return f"checkpoint {size} signed" + (f"; {cosigned}" if cosigned else "")


def catch_up(instance: dg.DagsterInstance, ledger: Ledger, limit: int = CATCH_UP_RUNS) -> list[str]:
    """Record the outcome of recent finished runs the ledger misses (launched without the
    daemon), then checkpoint and cosign."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=list(_OUTCOMES)), limit=limit, ascending=False
    )
    said = [_record(instance, run, _OUTCOMES[run.status], None, ledger) for run in reversed(runs)]
    return [*said, checkpoint_and_cosign(ledger)]


def _sensor(status: dg.DagsterRunStatus, event: EntryType) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        name=f"ledger_{event.value}",
        run_status=status,
        monitor_all_code_locations=True,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Appends a {event.value} entry to the trust ledger for every run"
        + ("." if event == EntryType.RUN_STARTED else ", then signs a checkpoint covering it."),
    )
    def ledger_sensor(context: dg.RunStatusSensorContext, ledger: LedgerResource):
        log = ledger.open()
        error = None
        if event == EntryType.RUN_FAILED:
            error = context.dagster_event.message or "run failed"
        context.log.info(_record(context.instance, context.dagster_run, event, error, log))
        if event != EntryType.RUN_STARTED:
            context.log.info(checkpoint_and_cosign(log))

    return ledger_sensor


@dg.sensor(
    minimum_interval_seconds=CATCH_UP_MINUTES * 60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records finished runs the ledger misses, then signs and cosigns a checkpoint.",
)
def ledger_catch_up(context: dg.SensorEvaluationContext, ledger: LedgerResource):
    for line in catch_up(context.instance, ledger.open()):
        context.log.info(line)
    return dg.SkipReason("the ledger is checkpointed")


ledger_run_started = _sensor(dg.DagsterRunStatus.STARTED, EntryType.RUN_STARTED)
ledger_run_succeeded = _sensor(dg.DagsterRunStatus.SUCCESS, EntryType.RUN_SUCCEEDED)
ledger_run_failed = _sensor(dg.DagsterRunStatus.FAILURE, EntryType.RUN_FAILED)

defs = dg.Definitions(
    sensors=[ledger_run_started, ledger_run_succeeded, ledger_run_failed, ledger_catch_up]
)

if __name__ == "__main__":
    for said in catch_up(dg.DagsterInstance.get(), Ledger.open()):
        print(said)
