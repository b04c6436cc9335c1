"""The demo's shards on the embedded hosts: start them with known keys, and read every key back.

Before planning, `start_demo_shards` starts each shard's demo key-value process on its current
host (its route in `ops.routing`, or the configured host for a new route), registers the route
and writes `keys_per_shard` known pairs. After the migration job, `verify_demo_shards` reads
every pair back from wherever `ops.routing` now points. All embedded hosts share 127.0.0.1, so
each shard listens on its own port (the one after the highest host port, plus its index in the
sky: the block `SkyParams.ports` reserves) and keeps it when it moves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from skyshard.broker.from_config import broker_policy, host_accesses
from skyshard.broker.ops_tables import OpsStore
from skyshard.config import paths
from skyshard.config.sky import Sky
from skyshard.demo_kv import client
from skyshard.transport.ssh import ConnectionPool
from skyshard.transport.validate import ValidationError

DEMO_KEYS = 20
HEALTH_TIMEOUT = 15.0


def demo_pairs(shard_id: str, count: int = DEMO_KEYS) -> dict[str, bytes]:
    """The known pairs written into a shard (the same on every run)."""
    return {f"demo-{i:03d}": f"{shard_id} value {i}".encode() for i in range(count)}


def shard_port(sky: Sky, shard_id: str) -> int:
    """The loopback port a shard listens on, on whichever embedded host runs it."""
    if shard_id not in sky.shard_by_id:
        raise ValidationError("shard_id", shard_id, "not a shard of the sky")
    host_ports = {host.port for _, host in sky.hosts.values()}
    port = max(host_ports) + 1 + [s.id for s in sky.shards].index(shard_id)
    if port > 65535:
        raise ValidationError("shard_port", port, f"of {shard_id} is past the last TCP port")
    return port


def start_demo_shards(
    sky: Sky,
    home: Path,
    shard_ids: Iterable[str],
    *,
    db: Path | None = None,
    keys_per_shard: int = DEMO_KEYS,
) -> dict[str, tuple[str, int]]:
    """Start each shard on its current embedded host, route it, write its known pairs.

    Returns `{shard_id: (host_id, port)}`. Idempotent: a shard already running where its route
    points is left running; one whose route exists (e.g. after a migration in an earlier run)
    is started there at its routed generation.
    """
    ops = OpsStore(db or paths.duckdb_path())
    wanted = list(shard_ids)
    placed: dict[str, tuple[str, int]] = {}
    with ConnectionPool() as pool:
        hosts = host_accesses(sky, sky.hosts, pool, broker_policy(sky))
        for shard_id in wanted:
            port = shard_port(sky, shard_id)
            route = ops.route(shard_id)
            host_id, generation = sky.shard_by_id[shard_id].current_host, 1
            if route is not None:
                host_id, port, generation = route.host_id, route.port, route.generation
            runtime = hosts[host_id].runtime()
            runtime.start(shard_id, port, generation=generation, bind=hosts[host_id].bind)
            runtime.health(shard_id, port, HEALTH_TIMEOUT)
            if route is None:
                ops.register_route(shard_id, host_id, hosts[host_id].service_address, port)
            for key, value in demo_pairs(shard_id, keys_per_shard).items():
                client.put(hosts[host_id].service_address, port, key, value)
            placed[shard_id] = (host_id, port)
    return placed


@dataclass(frozen=True)
class ShardCheck:
    """What reading a shard's known pairs back from its routed location found."""

    shard_id: str
    host_id: str | None
    port: int | None
    generation: int | None
    expected: int
    intact: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and self.intact == self.expected


def verify_demo_shards(
    shard_ids: Iterable[str], *, db: Path | None = None, keys_per_shard: int = DEMO_KEYS
) -> list[ShardCheck]:
    """Read every known pair of each shard from where `ops.routing` says it runs now."""
    ops = OpsStore(db or paths.duckdb_path())
    checks = []
    for shard_id in shard_ids:
        route = ops.route(shard_id)
        if route is None:
            checks.append(ShardCheck(shard_id, None, None, None, keys_per_shard, 0, ("no route",)))
            continue
        problems = []
        intact = 0
        for key, value in demo_pairs(shard_id, keys_per_shard).items():
            try:
                found = client.get(route.address, route.port, key)
            except OSError as error:
                problems.append(f"unreachable at {route.address}:{route.port}: {error}")
                break
            if found == value:
                intact += 1
            else:
                problems.append(f"{key}: expected {value!r}, found {found!r}")
        checks.append(
            ShardCheck(
                shard_id,
                route.host_id,
                route.port,
                route.generation,
                keys_per_shard,
                intact,
                tuple(problems),
            )
        )
    return checks
