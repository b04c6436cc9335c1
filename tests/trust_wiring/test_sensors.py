"""The run status sensors append run_started / run_succeeded / run_failed for real runs in a
real Dagster instance, once per run and event, without secret-looking tags."""

from __future__ import annotations

import dagster as dg
import pytest

from orchestration.resources import LedgerResource
from sensors.ledger import catch_up, ledger_run_failed, ledger_run_started, ledger_run_succeeded
from sensors.ledger import defs as ledger_defs
from skyshard.config import paths
from skyshard.ledger import Ledger
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.trust.events import record_run_event

SENSORS = (ledger_run_started, ledger_run_succeeded, ledger_run_failed)


@dg.asset
def numbers() -> list[int]:
    return [1, 2, 3]


@dg.op
def explode() -> None:
    raise RuntimeError("disk full")


@dg.job
def broken():
    explode()


TAGS = {"team": "ops", "api_token": "hunter2", "skyshard/to_provider": "fra-colo"}
numbers_job = dg.define_asset_job("numbers_job", selection=[numbers], tags=TAGS)
DEFS = dg.Definitions(
    assets=[numbers],
    jobs=[numbers_job, broken],
    sensors=ledger_defs.sensors,
    resources={"ledger": LedgerResource()},
)


def _ledger() -> Ledger:
    return Ledger.open(paths.ledger_dir())


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


def test_sensors_run_by_default():
    assert {s.default_status for s in SENSORS} == {dg.DefaultSensorStatus.RUNNING}


def test_ticks_record_every_run_once(instance):
    repository = DEFS.get_repository_def()

    def tick(sensor, cursor):
        context = dg.build_sensor_context(
            instance=instance,
            repository_def=repository,
            cursor=cursor,
            resources={"ledger": LedgerResource()},
        )
        return sensor.evaluate_tick(context).cursor

    cursors = {s.name: tick(s, None) for s in SENSORS}  # the first tick only sets the cursor
    ok = DEFS.resolve_job_def("numbers_job").execute_in_process(instance=instance)
    failed = broken.execute_in_process(instance=instance, raise_on_error=False)
    assert ok.success and not failed.success
    for sensor in SENSORS:
        tick(sensor, cursors[sensor.name])
        tick(sensor, cursors[sensor.name])  # re-evaluating from the same cursor appends nothing

    entries = list(_ledger().entries())
    events = sorted((e.run_id, e.type) for e in entries)
    assert events == sorted(
        [
            (ok.run_id, "run_started"),
            (ok.run_id, "run_succeeded"),
            (failed.run_id, "run_started"),
            (failed.run_id, "run_failed"),
        ]
    )
    by_event = {(e.run_id, e.type): e.payload for e in entries}
    succeeded = by_event[ok.run_id, "run_succeeded"]
    assert succeeded["job"] == "numbers_job"
    assert succeeded["asset_keys"] == ["numbers"]
    assert succeeded["providers"] == ["fra-colo"]
    assert succeeded["tags"]["team"] == "ops"
    assert "api_token" not in succeeded["tags"]
    assert "hunter2" not in (paths.ledger_dir() / "log.jsonl").read_text()
    assert "disk full" in by_event[failed.run_id, "run_failed"]["error"] or (
        "explode" in by_event[failed.run_id, "run_failed"]["error"]
    )
    assert _ledger().verify().ok


def test_direct_invocation_with_a_run_status_context(instance):
    result = DEFS.resolve_job_def("numbers_job").execute_in_process(instance=instance)
    context = dg.build_run_status_sensor_context(
        sensor_name=ledger_run_succeeded.name,
        dagster_event=result.get_run_success_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"ledger": LedgerResource()},
    )
    ledger_run_succeeded(context)
    ledger_run_succeeded(context)
    started, succeeded = _ledger().entries()
    assert (started.type, started.run_id, started.payload["late"]) == (
        "run_started",
        result.run_id,
        True,
    )
    assert (succeeded.type, succeeded.run_id, succeeded.actor) == (
        "run_succeeded",
        result.run_id,
        "dagster",
    )
    assert Checkpoint.from_note(_ledger().latest_checkpoint()).size == 2


def test_runs_without_the_daemon_are_caught_up_in_order_and_checkpointed(instance):
    ok = DEFS.resolve_job_def("numbers_job").execute_in_process(instance=instance)
    failed = broken.execute_in_process(instance=instance, raise_on_error=False)
    said = catch_up(instance, _ledger())
    assert said[-1] == "checkpoint 4 signed"
    events = [(e.run_id, e.type) for e in _ledger().entries()]
    assert events == [
        (ok.run_id, "run_started"),
        (ok.run_id, "run_succeeded"),
        (failed.run_id, "run_started"),
        (failed.run_id, "run_failed"),
    ]
    assert catch_up(instance, _ledger())[:2] == [
        f"run_succeeded of run {ok.run_id} is already in the ledger",
        f"run_failed of run {failed.run_id} is already in the ledger",
    ]


def test_record_run_event_refuses_other_types(ledger):
    with pytest.raises(ValueError, match="'trust_score' is not one of"):
        record_run_event("trust_score", "r", "j", ledger=ledger)
    assert record_run_event("run_started", "r", "j", ledger=ledger) is not None
    assert record_run_event("run_started", "r", "j", ledger=ledger) is None
    assert record_run_event("run_started", "r2", "j", ledger=ledger).seq == 1
