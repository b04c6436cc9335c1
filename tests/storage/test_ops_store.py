"""The `ops` tables behave the same on both state backends: migrations and their steps,
routing compare-and-set, the routing backlog, and the one-broker-per-move lease."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from skyshard.broker.ops_tables import OpsStore, PendingStep, RoutingConflict, routed_hosts
from skyshard.storage.state import DuckDBState, PostgresState, StateConfigError, state_url

MOVE = "mv-00000000000000a1"


@pytest.fixture
def ops(state_backend: str) -> OpsStore:
    return OpsStore(os.environ["SKYSHARD_DUCKDB"])


def test_the_setting_chooses_the_backend(ops: OpsStore, state_backend: str) -> None:
    expected = PostgresState if state_backend == "postgres" else DuckDBState
    assert isinstance(ops.state, expected)
    # With Postgres the DuckDB file is not touched at all.
    assert os.path.exists(os.environ["SKYSHARD_DUCKDB"]) == (state_backend == "duckdb")


def test_a_migration_records_its_steps_in_order(ops: OpsStore) -> None:
    ops.create_migration(MOVE, "kv-1", "host-a", "host-b")
    ops.create_migration(MOVE, "kv-9", "host-x", "host-y")  # the first row stays
    ops.record_step(MOVE, "precopy", {"round": 1}, bytes_sent=10, rounds=1)
    steps = ops.record_steps(
        MOVE, [PendingStep("frozen", {}), PendingStep("synced", {"bytes": 3})], downtime_ms=1.5
    )
    assert [s.seq for s in steps] == [2, 3]
    row = ops.migration(MOVE)
    assert (row.shard_id, row.phase, row.bytes_sent, row.rounds, row.downtime_ms) == (
        "kv-1", "synced", 10, 1, 1.5,
    )  # fmt: skip
    assert [(s.phase, s.detail) for s in ops.steps(MOVE)] == [
        ("precopy", {"round": 1}), ("frozen", {}), ("synced", {"bytes": 3}),
    ]  # fmt: skip
    ops.update_migration(MOVE, status="done", error=None)
    assert ops.migration(MOVE).status == "done"
    with pytest.raises(ValueError, match=r"unknown ops\.migrations columns"):
        ops.update_migration(MOVE, colour="red")


def test_routes_register_switch_and_refuse_stale_writers(ops: OpsStore) -> None:
    first = ops.register_route("kv-1", "host-a", "10.0.0.1", 8700)
    assert ops.register_route("kv-1", "host-a", "10.0.0.1", 8700) == first
    with pytest.raises(RoutingConflict, match="already routed to host-a"):
        ops.register_route("kv-1", "host-b", "10.0.0.2", 8700)
    ops.create_migration(MOVE, "kv-1", "host-a", "host-b")
    with pytest.raises(RoutingConflict, match="lease is not broker-1's"):
        ops.switch_route(MOVE, first, "host-b", "10.0.0.2", 8701, {}, "broker-1")
    ops.take_lease(MOVE, "broker-1", ttl=60)
    route, step = ops.switch_route(MOVE, first, "host-b", "10.0.0.2", 8701, {"x": 1}, "broker-1")
    assert (route.host_id, route.generation, step.phase) == ("host-b", 2, "switched")
    assert ops.migration(MOVE).phase == "switched"
    with pytest.raises(RoutingConflict, match="no longer host-a generation 1"):
        ops.switch_route(MOVE, first, "host-b", "10.0.0.2", 8701, {}, "broker-1")
    assert routed_hosts(os.environ["SKYSHARD_DUCKDB"]) == {"kv-1": "host-b"}
    with pytest.raises(RoutingConflict, match="not removing it"):
        ops.unregister_route(first)
    ops.unregister_route(route)
    assert ops.routes() == []


def test_the_routing_backlog_counts_misses_until_delivered(ops: OpsStore) -> None:
    ops.routing_missed("host-c", MOVE, 3, "timed out")
    ops.routing_missed("host-c", MOVE, 2, "refused")
    ops.routing_missed("host-d", MOVE, 1, "refused")
    backlog = ops.routing_backlog()
    assert [(m.host_id, m.attempts, m.last_error) for m in backlog] == [
        ("host-c", 5, "refused"), ("host-d", 1, "refused"),
    ]  # fmt: skip
    ops.routing_delivered([])
    ops.routing_delivered(["host-c"])
    assert [m.host_id for m in ops.routing_backlog()] == ["host-d"]


def test_one_live_lease_per_move_and_stuck_moves_without_one(ops: OpsStore) -> None:
    ops.create_migration(MOVE, "kv-1", "host-a", "host-b")
    assert [row.move_id for row in ops.stuck_moves()] == [MOVE]
    lease, stale = ops.take_lease(MOVE, "broker-1", ttl=60)
    assert (lease.owner, stale) == ("broker-1", None)
    assert ops.stuck_moves() == []
    held, _ = ops.take_lease(MOVE, "broker-2", ttl=60)
    assert held.owner == "broker-1"  # unchanged: broker-1's lease is live
    renewed, _ = ops.take_lease(MOVE, "broker-1", ttl=60)
    assert renewed.acquired_at == lease.acquired_at
    assert ops.renew_lease(MOVE, "broker-1", ttl=-1)  # expired now
    assert not ops.renew_lease(MOVE, "broker-2", ttl=60)
    taken, stale = ops.take_lease(MOVE, "broker-2", ttl=60)
    assert taken.owner == "broker-2" and stale.owner == "broker-1"
    assert stale.expires_at <= taken.acquired_at + timedelta(seconds=1)
    ops.release_lease(MOVE, "broker-1")  # not its lease any more: nothing happens
    assert ops.lease(MOVE).owner == "broker-2"
    ops.release_lease(MOVE, "broker-2")
    assert ops.lease(MOVE) is None


def test_a_bad_state_url_names_the_setting_and_hides_the_password(monkeypatch) -> None:
    monkeypatch.setenv("SKYSHARD_STATE_URL", "mysql://app:s3cret@db:3306/ops")
    with pytest.raises(StateConfigError, match="SKYSHARD_STATE_URL") as raised:
        state_url()
    assert "s3cret" not in str(raised.value) and "app:***@db:3306" in str(raised.value)


def test_a_failed_transaction_leaves_nothing_behind(ops: OpsStore) -> None:
    ops.create_migration(MOVE, "kv-1", "host-a", "host-b")

    def half(con) -> None:
        con.rows("UPDATE ops.migrations SET status = 'done' WHERE move_id = ?", [MOVE])
        con.rows("SELECT no_such_column FROM ops.migrations")

    with pytest.raises(Exception, match="no_such_column"):
        ops.state.transact(half)
    assert ops.migration(MOVE).status == "running"


def test_brokers_racing_for_one_move_get_exactly_one_lease(ops: OpsStore) -> None:
    brokers = [f"broker-{index}" for index in range(8)]
    start = threading.Barrier(len(brokers))

    def take(owner: str) -> str:
        store = OpsStore(os.environ["SKYSHARD_DUCKDB"])
        start.wait()
        return store.take_lease(MOVE, owner, ttl=60)[0].owner

    with ThreadPoolExecutor(len(brokers)) as pool:
        winners = set(pool.map(take, brokers))
    assert len(winners) == 1
    assert winners == {ops.lease(MOVE).owner}
