"""The code location serves the job and the sensor, and the instance config limits migrations
to one run at a time per target provider."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from orchestration.definitions import build_definitions
from orchestration.migration_job import RETRY_POLICY

ROOT = Path(__file__).resolve().parents[2]


def test_the_code_location_has_the_job_and_the_sensor(site) -> None:
    defs = build_definitions(site.sky)
    job = defs.resolve_job_def("migrate_shard")
    sensor = defs.resolve_sensor_def("approved_migrations")
    assert sensor.job_name == "migrate_shard"
    op = job.graph.node_named("migrate").definition
    assert op.retry_policy == RETRY_POLICY and op.pool is None  # never the duckdb_writer pool


def test_instance_config_limits_runs_per_target_provider(tmp_path, monkeypatch) -> None:
    shutil.copyfile(ROOT / "orchestration" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": "skyshard/to_provider", "value": {"applyLimitPerUniqueValue": True},
            "limit": 1} in limits  # fmt: skip
