"""The whole path docs/migrations.md documents, on namespace hosts with their own addresses: a
shard started with `skyshard shard start`, a proposed move approved with `skyshard plan
approve`, the approved_migrations sensor's tick, the migrate_shard run it requests, and the
data read where routing points (the target's non-loopback address)."""

from __future__ import annotations

import ipaddress

import dagster as dg

from orchestration.migration_job import migrate_shard
from orchestration.resources import DuckDBFile, build_resources
from sensors.migrations import approved_migrations
from skyshard.broker.ops_tables import OpsStore
from skyshard.demo_kv import client
from skyshard.ledger import Ledger
from skyshard.trust.events import EntryType
from tests.migration_job.sky import add_move, plan_status
from tests.migration_job.test_lifecycle import cli

MOVE = "mv-00000000000000e1"


def sensor_tick(instance: dg.DagsterInstance, db: str, cursor: str | None = None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"duckdb": DuckDBFile(path=db)}
    )
    return approved_migrations.evaluate_tick(context)


def test_cli_approval_sensor_tick_and_run_move_the_data_to_the_target_address(
    site, instance
) -> None:
    cli("shard", "start", site.shard, "--port", str(site.port))
    for index in range(5):
        site.put(f"doc-{index}", f"written before approval {index}".encode() * 200)
    add_move(site.db, MOVE, site.shard, status="proposed")
    assert sensor_tick(instance, str(site.db)).run_requests == []  # proposed is not approved

    out = cli("plan", "approve", MOVE, "--by", "alice", "--reason", "cheaper on prov-b")
    assert f"{MOVE}: {site.shard} host-a -> host-b is now approved (by alice)" in out
    tick = sensor_tick(instance, str(site.db))
    [request] = tick.run_requests
    assert request.run_key == MOVE
    result = migrate_shard.execute_in_process(
        run_config=request.run_config,
        tags=request.tags,
        resources=build_resources(),
        instance=instance,
        raise_on_error=False,
    )
    assert result.success
    assert plan_status(site.db, MOVE) == "done"

    route = OpsStore(site.db).route(site.shard)
    assert route is not None and route.host_id == "host-b"
    assert route.address == site.address("host-b")
    assert not ipaddress.ip_address(route.address).is_loopback
    for key, value in site.written.items():
        assert client.get(route.address, route.port, key) == value, key
    site.assert_serving("host-b")

    entries = list(Ledger.open().entries())
    [approval] = [e for e in entries if e.type == EntryType.OPERATOR_DECISION]
    assert approval.actor == "alice" and approval.payload["move_id"] == MOVE
    [completed] = [e for e in entries if e.type == EntryType.MIGRATION_COMPLETED]
    assert completed.run_id == result.run_id
    assert sensor_tick(instance, str(site.db), tick.cursor).run_requests == []
