"""Real shard processes on embedded hosts: start, health, a full migration, the demo helpers."""

from __future__ import annotations

import random

import pytest

from skyshard.broker.from_config import transfer_ca
from skyshard.broker.migration import MigrationSettings, Migrator, MoveRequest
from skyshard.broker.ops_tables import OpsStore
from skyshard.broker.precopy import PrecopyRule
from skyshard.demo_kv import client
from skyshard.embedded_hosts.demo import (
    demo_pairs,
    shard_port,
    start_demo_shards,
    verify_demo_shards,
)
from skyshard.transport.validate import ValidationError
from tests.embedded_hosts.conftest import shard_processes
from tests.support.sshd import free_tcp_port

FAST = MigrationSettings(PrecopyRule(max_rounds=2, small_bytes=256 << 10), health_timeout=10)


def test_runtime_starts_a_demo_kv_shard_that_answers_health(access):
    runtime = access["cloud-b-h01"].runtime()
    port = free_tcp_port()
    status = runtime.start("probe-kv", port, generation=1)
    try:
        assert status.running and status.generation == 1
        assert runtime.health("probe-kv", port)["healthy"] is True
        client.put("127.0.0.1", port, "k", b"v")
        assert client.get("127.0.0.1", port, "k") == b"v"
    finally:
        runtime.clean("probe-kv")
    assert not runtime.status("probe-kv").running


def test_demo_shards_migrate_between_providers_and_keep_every_key(access, sky_home, tmp_path):
    sky, home = sky_home
    db = tmp_path / "skyshard.duckdb"
    shard = sky.shards[0]
    placed = start_demo_shards(sky, home, [shard.id], db=db, keys_per_shard=30)
    assert placed == {shard.id: (shard.current_host, shard_port(sky, shard.id))}
    # Started twice is a no-op: the same process keeps serving.
    assert start_demo_shards(sky, home, [shard.id], db=db, keys_per_shard=30) == placed
    rng = random.Random(3)
    extra = {f"big-{i}": rng.randbytes(300 << 10) for i in range(4)}  # incompressible
    for key, value in extra.items():
        client.put("127.0.0.1", placed[shard.id][1], key, value)

    target = next(
        host_id
        for host_id, (provider, _) in sky.hosts.items()
        if provider.id != sky.hosts[shard.current_host][0].id
    )
    migrator = Migrator(str(db), access, FAST, transfer_ca=transfer_ca(sky))
    outcome = migrator.migrate(MoveRequest("move-1", shard.id, shard.current_host, target))
    assert (outcome.status, outcome.error) == ("done", None)
    assert outcome.bytes_sent >= 4 * (300 << 10)

    route = OpsStore(db).route(shard.id)
    assert (route.host_id, route.generation) == (target, 2)
    (check,) = verify_demo_shards([shard.id], db=db, keys_per_shard=30)
    assert check.ok and check.host_id == target and check.intact == 30
    for key, value in extra.items():
        assert client.get(route.address, route.port, key) == value
    # Exactly one copy runs, under the target's root.
    roots = [access[h].root for h in sky.hosts]
    (copy,) = shard_processes(roots)
    assert f"{access[target].root}/shards/{shard.id}/state" in copy[1]

    # A later demo run finds the shard where the migration left it.
    again = start_demo_shards(sky, home, [shard.id], db=db, keys_per_shard=30)
    assert again == {shard.id: (target, route.port)}
    access[target].runtime().clean(shard.id)


def test_verify_reports_missing_routes_and_unreachable_shards(sky_home, tmp_path):
    sky, _ = sky_home
    db = tmp_path / "skyshard.duckdb"
    shard = sky.shards[1]
    (unrouted,) = verify_demo_shards([shard.id], db=db)
    assert not unrouted.ok and unrouted.problems == ("no route",)
    OpsStore(db).register_route(
        shard.id, shard.current_host, "127.0.0.1", shard_port(sky, shard.id)
    )
    (down,) = verify_demo_shards([shard.id], db=db)
    assert not down.ok and "unreachable at 127.0.0.1" in down.problems[0]


def test_demo_pairs_are_stable_and_ports_validated(sky_home):
    sky, _ = sky_home
    assert demo_pairs("kv-1", 2) == {"demo-000": b"kv-1 value 0", "demo-001": b"kv-1 value 1"}
    highest_host = max(host.port for _, host in sky.hosts.values())
    assert shard_port(sky, sky.shards[3].id) == highest_host + 4
    with pytest.raises(ValidationError, match="'nope'"):
        shard_port(sky, "nope")
