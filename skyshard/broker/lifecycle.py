"""The shard lifecycle operators drive: start a configured shard on a host through the runtime,
adopt one already running there, stop it, and see where each shard runs. Starting or adopting
registers the shard in `ops.routing`, which is what makes it migratable."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from skyshard.broker.migration import HostAccess
from skyshard.broker.ops_tables import OpsStore, Route, RoutingConflict
from skyshard.config.errors import ConfigError, ConfigProblem
from skyshard.config.shards import Shard
from skyshard.config.sky import PROVIDERS_FILE, WORKLOADS_FILE, Sky
from skyshard.runtime.client import ShardStatus
from skyshard.transport.validate import ValidationError

HEALTH_TIMEOUT = 15.0
NOT_REGISTERED = "not registered in ops.routing: start or adopt it first (skyshard shard start)"


@dataclass(frozen=True)
class ShardPlace:
    """Where a configured shard is routed, and what its host says about it (None: not asked
    or unreachable, see `error`)."""

    shard_id: str
    workload_id: str
    configured_host: str
    route: Route | None
    status: ShardStatus | None
    error: str | None


def configured_shard(sky: Sky, shard_id: str) -> Shard:
    """The shard of `workloads.yaml` named `shard_id`, or a ConfigError listing the known ones."""
    if shard_id not in sky.shard_by_id:
        known = sorted(sky.shard_by_id)
        shown = ", ".join(known[:8]) + (" ..." if len(known) > 8 else "")
        problem = ConfigProblem(
            sky.home / WORKLOADS_FILE, "shard_id", shard_id, f"a configured shard ({shown})"
        )
        raise ConfigError([problem])
    return sky.shard_by_id[shard_id]


def default_port(sky: Sky, shard_id: str) -> int:
    """The port of the endpoint the workload's health check names (`runtime.health_check.
    port_name`); a workload without that endpoint needs an explicit port."""
    shard = configured_shard(sky, shard_id)
    wanted = shard.runtime.health_check.port_name
    for endpoint in shard.endpoints:
        if endpoint.name == wanted:
            return endpoint.port
    raise ValidationError(
        "port", None, f"workload {shard.workload_id} has no endpoint {wanted!r}; give --port"
    )


def _free_port(ops: OpsStore, shard_id: str, host_id: str, port: int) -> None:
    for route in ops.routes():
        if route.shard_id != shard_id and (route.host_id, route.port) == (host_id, port):
            raise RoutingConflict(
                f"port {port} on {host_id} is routed to shard {route.shard_id}; choose another"
            )


def _registered(ops: OpsStore, shard_id: str, host_id: str | None) -> Route | None:
    route = ops.route(shard_id)
    if route is not None and host_id is not None and route.host_id != host_id:
        raise RoutingConflict(
            f"shard {shard_id} is routed to {route.host_id} (generation {route.generation}); "
            f"move it there with a migration instead of starting it on {host_id}"
        )
    return route


def start_shard(
    sky: Sky,
    ops: OpsStore,
    hosts: Mapping[str, HostAccess],
    shard_id: str,
    *,
    host_id: str | None = None,
    port: int | None = None,
    health_timeout: float = HEALTH_TIMEOUT,
) -> Route:
    """Start `shard_id` through the runtime (on its routed host, else `host_id`, else its
    configured host), wait for its health check, and register it in routing. Idempotent."""
    shard = configured_shard(sky, shard_id)
    route = _registered(ops, shard_id, host_id)
    if route is not None:
        host_id, port, generation = route.host_id, route.port, route.generation
    else:
        host_id = host_id or shard.current_host
        port = port or default_port(sky, shard_id)
        _free_port(ops, shard_id, host_id, port)
        generation = 0
    access = _access(sky, hosts, host_id)
    runtime = access.runtime()
    # A host that ran the shard before keeps its fence: start at that generation or later.
    generation = max(generation, runtime.status(shard_id).generation, 1)
    runtime.start(shard_id, port, generation=generation, bind=access.bind)
    runtime.health(shard_id, port, health_timeout)
    if route is not None:
        return route
    return ops.register_route(shard_id, host_id, access.service_address, port, generation)


def adopt_shard(
    sky: Sky,
    ops: OpsStore,
    hosts: Mapping[str, HostAccess],
    shard_id: str,
    *,
    host_id: str,
    port: int,
    pid: int,
    state: str,
    health_timeout: float = HEALTH_TIMEOUT,
) -> Route:
    """Take over a copy of `shard_id` already running on `host_id` (process `pid`, its data in
    `state`, serving on the host's address and `port`), check its health, register it."""
    configured_shard(sky, shard_id)
    if _registered(ops, shard_id, host_id) is not None:
        raise RoutingConflict(f"shard {shard_id} is already registered; nothing to adopt")
    _free_port(ops, shard_id, host_id, port)
    access = _access(sky, hosts, host_id)
    runtime = access.runtime()
    generation = max(runtime.status(shard_id).generation, 1)
    runtime.adopt(shard_id, pid=pid, state=state, port=port, generation=generation,
                  bind=access.bind)  # fmt: skip
    runtime.health(shard_id, port, health_timeout)
    return ops.register_route(shard_id, host_id, access.service_address, port, generation)


def stop_shard(
    ops: OpsStore, hosts: Mapping[str, HostAccess], shard_id: str, sky: Sky
) -> ShardStatus:
    """Stop the routed copy and drop its route (its state stays on the host, and its fence:
    a later start there resumes at the same generation)."""
    route = ops.route(shard_id)
    if route is None:
        raise RoutingConflict(f"shard {shard_id} is {NOT_REGISTERED}")
    status = _access(sky, hosts, route.host_id).runtime().stop(shard_id)
    ops.unregister_route(route)
    return status


def shard_places(
    sky: Sky, ops: OpsStore, hosts: Mapping[str, HostAccess], shard_ids: Iterable[str]
) -> list[ShardPlace]:
    """Each shard's route and, for routed ones, its runtime status on the routed host."""
    places = []
    for shard_id in shard_ids:
        shard = configured_shard(sky, shard_id)
        route = ops.route(shard_id)
        status, error = None, None
        if route is not None:
            try:
                status = _access(sky, hosts, route.host_id).runtime().status(shard_id)
            except Exception as failure:  # one unreachable host must not hide the others
                error = f"{type(failure).__name__}: {failure}"
        places.append(
            ShardPlace(shard_id, shard.workload_id, shard.current_host, route, status, error)
        )
    return places


def migration_blockers(sky: Sky, routes: Iterable[Route]) -> dict[str, str]:
    """Why the broker cannot migrate a shard, per shard it cannot: not registered, routed to
    a host that is no longer configured, or on a host without a pinned host key."""
    routed = {route.shard_id: route for route in routes}
    blockers = {}
    for shard in sky.shards:
        route = routed.get(shard.id)
        if route is None:
            blockers[shard.id] = NOT_REGISTERED
        elif route.host_id not in sky.hosts:
            blockers[shard.id] = f"routed to host {route.host_id}, which is not configured"
        elif not sky.hosts[route.host_id][1].host_key:
            blockers[shard.id] = f"host {route.host_id} has no pinned host_key in {PROVIDERS_FILE}"
    return blockers


def _access(sky: Sky, hosts: Mapping[str, HostAccess], host_id: str) -> HostAccess:
    if host_id not in hosts:
        raise ConfigError(
            [
                ConfigProblem(
                    sky.home / PROVIDERS_FILE,
                    "providers[*].hosts[*].id",
                    host_id,
                    f"a configured host id; known: {sorted(sky.hosts)}",
                )
            ]
        )
    return hosts[host_id]
