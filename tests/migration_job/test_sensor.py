"""The approved_migrations sensor: one run request per approved move, keyed by the move id,
none again on the next tick, and a skipped tick while a writer holds the DuckDB file."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from orchestration.resources import DuckDBFile
from sensors.migrations import approved_migrations, stuck_migrations
from skyshard.broker.ops_tables import OpsStore
from skyshard.config import paths
from tests.migration_job.sky import add_move

MOVES = {"mv-00000000000000a1": "approved", "mv-00000000000000a2": "approved",
         "mv-00000000000000a3": "proposed", "mv-00000000000000a4": "rejected"}  # fmt: skip


def tick(instance: dg.DagsterInstance, cursor: str | None = None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"duckdb": DuckDBFile(path=str(paths.duckdb_path()))},
    )
    return approved_migrations.evaluate_tick(context)


def test_one_run_request_per_approved_move_then_none(instance) -> None:
    for move_id, status in MOVES.items():
        add_move(paths.duckdb_path(), move_id, "kv-0", status)
    first = tick(instance)
    requests = {r.run_key: r for r in first.run_requests}
    assert sorted(requests) == ["mv-00000000000000a1", "mv-00000000000000a2"]
    request = requests["mv-00000000000000a1"]
    # No job name: the request runs the sensor's own job.
    assert request.job_name is None and approved_migrations.job_name == "migrate_shard"
    assert request.run_config["ops"] == {"migrate": {"config": {"move_id": "mv-00000000000000a1"}}}
    assert (
        request.tags.items()
        >= {
            "skyshard/move_id": "mv-00000000000000a1",
            "skyshard/from_provider": "prov-a",
            "skyshard/to_provider": "prov-b",
            "skyshard/provider": "prov-b",
        }.items()
    )
    second = tick(instance, first.cursor)
    assert second.run_requests == [] and "all requested before" in second.skip_message
    # a newly approved move is requested on the next tick; the earlier ones are not again
    add_move(paths.duckdb_path(), "mv-00000000000000a5", "kv-0")
    third = tick(instance, second.cursor)
    assert [r.run_key for r in third.run_requests] == ["mv-00000000000000a5"]


def test_no_plan_yet_skips(instance) -> None:
    assert "no DuckDB file" in tick(instance).skip_message
    add_move(paths.duckdb_path(), "mv-00000000000000b1", "kv-0")
    with subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(60)", str(paths.duckdb_path())],
        stdout=subprocess.PIPE, text=True,
    ) as writer:  # fmt: skip
        try:
            assert writer.stdout.readline().strip() == "ready"
            locked = tick(instance)
        finally:
            writer.kill()
    assert locked.run_requests == []
    assert "locked by a writer" in locked.skip_message


def test_the_sensors_run_by_default() -> None:
    for sensor in (approved_migrations, stuck_migrations):
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.job_name == "migrate_shard"


def test_the_recovery_sensor_skips_without_ops_tables_and_without_stuck_moves(instance) -> None:
    context = dg.build_sensor_context(
        instance=instance, resources={"duckdb": DuckDBFile(path=str(paths.duckdb_path()))}
    )
    assert "no DuckDB file" in stuck_migrations.evaluate_tick(context).skip_message
    add_move(paths.duckdb_path(), "mv-00000000000000b2", "kv-0")
    # The sensor's first read creates the empty ops tables (on whichever state backend).
    assert "no unfinished move" in stuck_migrations.evaluate_tick(context).skip_message
    OpsStore(paths.duckdb_path()).create_migration(
        "mv-00000000000000b2", "kv-0", "host-a", "host-b"
    )
    (request,) = stuck_migrations.evaluate_tick(context).run_requests  # no lease: stuck
    assert request.run_key.startswith("recover:mv-00000000000000b2:0:")
    OpsStore(paths.duckdb_path()).take_lease("mv-00000000000000b2", "run-live", ttl=60)
    assert "no unfinished move" in stuck_migrations.evaluate_tick(context).skip_message
