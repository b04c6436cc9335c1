"""Dagster on a real Postgres (orchestration/dagster-postgres.yaml): a real job's run and
events stored there and read back; the run queue's per-provider limit decided by the queued
run coordinator daemon over runs in that storage."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.context import BaseWorkspaceRequestContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from orchestration.definitions import build_definitions
from sensors.migrations import move_run_request
from skyshard.config import load_sky
from skyshard.sources import ingest
from tests.scale_out.conftest import ROOT

INSTANCE_YAML = ROOT / "orchestration" / "dagster-postgres.yaml"
RUN_TIMEOUT_S = 300
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def dagster_url(dsn: str) -> str:
    """The DSN with the driver dagster-postgres needs: SQLAlchemy 2.1 picks psycopg 3 for a
    bare `postgresql://`, and dagster-postgres's `NOTIFY` fails on it."""
    return dsn.replace("postgresql://", "postgresql+psycopg2://", 1)


@pytest.fixture
def postgres_instance(postgres_dsn, tmp_path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    # The daemon's code server must have exited before the session's Postgres stops.
    wait = "code_servers:\n  wait_for_local_processes_on_shutdown: true\n"
    (home / "dagster.yaml").write_text(INSTANCE_YAML.read_text() + wait)
    monkeypatch.setenv("SKYSHARD_DAGSTER_POSTGRES_URL", dagster_url(postgres_dsn))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        yield instance


def test_the_run_queue_limits_match_the_embedded_instance():
    embedded = yaml.safe_load((ROOT / "orchestration" / "dagster.yaml").read_text())
    shared = yaml.safe_load(INSTANCE_YAML.read_text())
    assert shared["concurrency"] == embedded["concurrency"]
    assert shared["storage"]["postgres"]["postgres_url"] == {"env": "SKYSHARD_DAGSTER_POSTGRES_URL"}


def test_a_real_job_runs_on_the_postgres_instance_and_reads_back(
    postgres_instance, postgres_dsn, small_sky, monkeypatch
):
    monkeypatch.setenv("SKYSHARD_HOME", str(small_sky))
    sky = load_sky(small_sky)
    feed = ingest.sources_of(sky.providers)[0][1].id
    job = build_definitions(sky, partitioned=True).resolve_job_def("ingest_feeds")
    result = job.execute_in_process(instance=postgres_instance, partition_key=feed)

    run = postgres_instance.get_run_by_id(result.run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == feed
    materialized = postgres_instance.all_logs(
        result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    assert {m.dagster_event.partition for m in materialized} == {feed}
    with psycopg.connect(postgres_dsn) as con:
        stored = con.execute("select count(*) from runs where run_id = %s", [result.run_id])
        assert stored.fetchone()[0] == 1
        events = con.execute("select count(*) from event_logs where run_id = %s", [result.run_id])
        assert events.fetchone()[0] == len(postgres_instance.all_logs(result.run_id))
    for storage in (
        postgres_instance.run_storage,
        postgres_instance.event_log_storage,
        postgres_instance.schedule_storage,
    ):
        assert type(storage).__module__.startswith("dagster_postgres")
    assert postgres_instance.all_instigator_state() == []


def submit_move(
    instance: dg.DagsterInstance, workspace: BaseWorkspaceRequestContext, move: str, to: str
) -> str:
    """Submit a migrate_shard run as the approved_migrations sensor requests it, through the
    instance's run coordinator (the queue)."""
    location = next(iter(workspace.get_code_location_entries().values())).code_location
    assert location is not None
    remote = location.get_repository("__repository__").get_full_job("migrate_shard")
    request = move_run_request(move, "cloud-a", to)
    job = build_definitions(load_sky(Path(os.environ["SKYSHARD_HOME"]))).resolve_job_def(
        "migrate_shard"
    )
    run = instance.create_run_for_job(
        job,
        run_config=request.run_config,
        tags=request.tags,
        remote_job_origin=remote.get_remote_origin(),
        job_code_origin=remote.get_python_origin(),
    )
    return instance.submit_run(run.run_id, workspace).run_id


def statuses(instance: dg.DagsterInstance, run_ids: list[str]) -> list[dg.DagsterRunStatus]:
    return [instance.get_run_by_id(run_id).status for run_id in run_ids]


def wait_until_finished(instance: dg.DagsterInstance, run_ids: list[str]) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not all(status in FINISHED for status in statuses(instance, run_ids)):
        assert time.monotonic() < deadline, statuses(instance, run_ids)
        time.sleep(0.5)


def test_the_queue_starts_one_move_per_target_provider(postgres_instance, small_sky, monkeypatch):
    """Three moves into cloud-b and one into cloud-c queued: one daemon iteration launches one
    of each (the `skyshard/to_provider` limit); the next cloud-b move waits until the first
    has finished. The launched runs are real migrate_shard runs of moves no plan holds, so
    they fail; the queue only cares that they finished."""
    monkeypatch.setenv("SKYSHARD_HOME", str(small_sky))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    target = ModuleTarget("orchestration.definitions", None, str(ROOT), "skyshard")
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    with create_test_daemon_workspace_context(target, postgres_instance) as context:
        workspace = context.create_request_context()
        into_b = [
            submit_move(postgres_instance, workspace, f"move-{i}", "cloud-b") for i in range(3)
        ]
        into_c = submit_move(postgres_instance, workspace, "move-c", "cloud-c")
        assert set(statuses(postgres_instance, [*into_b, into_c])) == {dg.DagsterRunStatus.QUEUED}

        list(daemon.run_iteration(context))
        queued = [
            status == dg.DagsterRunStatus.QUEUED
            for status in statuses(postgres_instance, [*into_b, into_c])
        ]
        assert queued == [False, True, True, False]

        wait_until_finished(postgres_instance, [into_b[0], into_c])
        list(daemon.run_iteration(context))
        queued = [
            status == dg.DagsterRunStatus.QUEUED for status in statuses(postgres_instance, into_b)
        ]
        assert queued == [False, False, True]
        wait_until_finished(postgres_instance, into_b[:2])
