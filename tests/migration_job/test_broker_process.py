"""The broker is a real process killed with SIGKILL at the cutover, after the source stopped,
once the target serves and after the commit point; the stuck_migrations sensor finds the move
with a dead lease and its migrate_shard run resumes it: back (then a fresh attempt) before
the commit point, forward after it. Each ends with the move done, exactly one running copy,
routed, with every key readable there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest

from orchestration.migration_job import migrate_shard
from orchestration.resources import DuckDBFile, build_resources
from sensors.migrations import RECOVERY_TAG, stuck_migrations
from skyshard.broker.ops_tables import OpsStore, now
from tests.migration_job.sky import add_move, plan_status

MOVE = "mv-00000000000000e1"
LEASE_TTL = 2.0
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_broker(phase: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.migration_job.broker_process", MOVE, phase, str(LEASE_TTL)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {timeout}s")
        time.sleep(0.1)


def source_stopped(site) -> bool:
    with site.access() as hosts:
        return not hosts["host-a"].runtime().status(site.shard).running


def recover(site, instance) -> dg.ExecuteInProcessResult:
    """One tick of the self-healing sensor, and the run it asks for."""
    context = dg.build_sensor_context(
        instance=instance, resources={"duckdb": DuckDBFile(path=str(site.db))}
    )
    (request,) = stuck_migrations.evaluate_tick(context).run_requests
    assert request.tags[RECOVERY_TAG] == "true" and request.tags["skyshard/move_id"] == MOVE
    return migrate_shard.execute_in_process(
        run_config=request.run_config, resources=build_resources(),
        instance=instance, tags=request.tags, raise_on_error=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("phase", "after_source_stops", "direction"),
    [
        ("cutover", False, "back"),
        ("cutover", True, "back"),
        ("healthy", False, "back"),
        ("switched", False, "forward"),
    ],
    ids=["at-cutover", "after-source-stopped", "target-serving", "after-commit"],
)
def test_a_killed_broker_is_recovered_by_the_sensor(
    site, instance, phase, after_source_stops, direction
) -> None:
    site.place()
    add_move(site.db, MOVE, site.shard)
    broker = start_broker(phase)
    try:
        assert broker.stdout.readline().strip() == f"at {phase}"
        if after_source_stops:
            wait_until(lambda: source_stopped(site), "the source copy stopping")
        broker.send_signal(signal.SIGKILL)
        broker.wait(timeout=10)
    finally:
        if broker.poll() is None:
            broker.kill()
    ops = OpsStore(site.db)
    assert ops.lease(MOVE).owner == "broker-process"  # nothing released it
    context = dg.build_sensor_context(
        instance=instance, resources={"duckdb": DuckDBFile(path=str(site.db))}
    )
    assert stuck_migrations.evaluate_tick(context).run_requests == []  # its lease is still live
    wait_until(lambda: ops.lease(MOVE).expires_at <= now(), "the lease expiring", LEASE_TTL + 10)

    result = recover(site, instance)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    events = {step.phase: step.detail for step in ops.steps(MOVE)}
    assert events["lease_taken_over"]["from"] == "broker-process"
    assert events["resumed"]["direction"] == direction
    assert events["resumed"]["by"] == result.run_id
    # Back: rolled back (the source serves again), then the same run's fresh attempt moves it.
    assert ("rolled_back" in events) == (direction == "back")
    assert plan_status(site.db, MOVE) == "done"
    site.assert_serving("host-b")
    assert ops.lease(MOVE) is None
    assert stuck_migrations.evaluate_tick(context).run_requests == []


def test_a_second_run_of_a_live_move_is_refused_naming_the_owner(site, instance) -> None:
    site.place()
    add_move(site.db, MOVE, site.shard)
    broker = start_broker("precopy")
    try:
        assert broker.stdout.readline().strip() == "at precopy"
        steps_before = len(OpsStore(site.db).steps(MOVE))
        second = migrate_shard.execute_in_process(
            run_config={"ops": {"migrate": {"config": {"move_id": MOVE}}}},
            resources=build_resources(),
            instance=instance, raise_on_error=False,
        )  # fmt: skip
        assert not second.success
        (failure,) = [e for e in second.all_events if e.event_type_value == "STEP_FAILURE"]
        message = failure.step_failure_data.user_failure_data.description
        assert f"move {MOVE} is being run by broker-process" in message
        assert len(OpsStore(site.db).steps(MOVE)) == steps_before  # it changed nothing
        assert OpsStore(site.db).migration(MOVE).status == "running"
        broker.stdin.write("go\n")
        broker.stdin.flush()
        assert broker.stdout.readline().strip() == "finished done"
        assert broker.wait(timeout=30) == 0
    finally:
        if broker.poll() is None:
            broker.kill()
    assert plan_status(site.db, MOVE) == "done"
    site.assert_serving("host-b")
