"""`skyshard shard ...`: the shard lifecycle from the command line (start, adopt, stop, status,
list), acting as the broker with its key, pinned host keys and grants."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import click
from rich.console import Console
from rich.table import Table

from skyshard import paths
from skyshard.broker import lifecycle
from skyshard.broker.from_config import broker_policy, host_accesses
from skyshard.broker.migration import HostAccess
from skyshard.broker.ops_tables import OpsStore, RoutingConflict
from skyshard.config import ConfigError, Sky
from skyshard.home import current_sky
from skyshard.transport.access import AccessDenied
from skyshard.transport.ssh import ConnectionPool, SshError
from skyshard.transport.validate import ValidationError

console = Console()
REFUSALS = (ConfigError, ValidationError, RoutingConflict, AccessDenied, SshError, OSError)


@contextlib.contextmanager
def _broker(
    host_ids: Iterable[str] | None = None,
) -> Iterator[tuple[Sky, OpsStore, dict[str, HostAccess]]]:
    """The sky, the ops tables and the broker's access to `host_ids` (None: every host with
    a pinned key); every refusal becomes a one-line error naming what to fix."""
    try:
        sky = current_sky()
        if host_ids is None:
            host_ids = [host_id for host_id, (_, host) in sky.hosts.items() if host.host_key]
        with ConnectionPool() as pool:
            hosts = host_accesses(sky, host_ids, pool, broker_policy(sky))
            yield sky, OpsStore(paths.duckdb_path()), hosts
    except REFUSALS as error:
        raise click.ClickException(f"{type(error).__name__}: {error}") from None


@click.group("shard")
def shard() -> None:
    """Start, adopt, stop and inspect shards; started or adopted shards can be migrated."""


@shard.command("start")
@click.argument("shard_id")
@click.option("--host", "host_id", help="Host to start on (default: routed, else configured).")
@click.option("--port", type=int, help="Port (default: the workload's health-check endpoint).")
def start(shard_id: str, host_id: str | None, port: int | None) -> None:
    """Start SHARD_ID through the runtime and register it in routing."""
    with _broker() as (sky, ops, hosts):
        route = lifecycle.start_shard(sky, ops, hosts, shard_id, host_id=host_id, port=port)
    console.print(
        f"[green]started[/green] {shard_id} on {route.host_id} "
        f"({route.address}:{route.port}, generation {route.generation})"
    )


@shard.command("adopt")
@click.argument("shard_id")
@click.option("--host", "host_id", required=True, help="Host the copy runs on.")
@click.option("--port", type=int, required=True, help="Port it serves on (host address).")
@click.option("--pid", type=int, required=True, help="Its process id (leading its group).")
@click.option("--state", required=True, help="Its state directory (on its command line).")
def adopt(shard_id: str, host_id: str, port: int, pid: int, state: str) -> None:
    """Take over a copy of SHARD_ID already running on a host and register it in routing."""
    with _broker([host_id]) as (sky, ops, hosts):
        route = lifecycle.adopt_shard(sky, ops, hosts, shard_id, host_id=host_id, port=port,
                                      pid=pid, state=state)  # fmt: skip
    console.print(f"[green]adopted[/green] {shard_id} on {route.host_id} ({route.address}:"
                  f"{route.port}, generation {route.generation})")  # fmt: skip


@shard.command("stop")
@click.argument("shard_id")
def stop(shard_id: str) -> None:
    """Stop SHARD_ID where it is routed and drop its route (state stays on the host)."""
    with _broker() as (sky, ops, hosts):
        lifecycle.stop_shard(ops, hosts, shard_id, sky)
    console.print(f"stopped {shard_id}; not routed any more")


@shard.command("status")
@click.argument("shard_ids", nargs=-1, required=True)
def status(shard_ids: tuple[str, ...]) -> None:
    """Where each SHARD_ID is routed and what its host says about it."""
    _print_places(shard_ids)


@shard.command("list")
def list_shards() -> None:
    """Every configured shard: routed where, running or not, migratable or why not."""
    _print_places(None)


def _print_places(shard_ids: Iterable[str] | None) -> None:
    with _broker() as (sky, ops, hosts):
        wanted = [s.id for s in sky.shards] if shard_ids is None else shard_ids
        places = lifecycle.shard_places(sky, ops, hosts, wanted)
        blockers = lifecycle.migration_blockers(sky, ops.routes())
    table = Table("shard", "workload", "routed to", "generation", "running", "migratable")
    for place in places:
        route = place.route
        where = f"{route.host_id} {route.address}:{route.port}" if route else "-"
        if place.error:
            running = f"[red]{place.error}[/red]"
        elif place.status is None:
            running = "-"
        else:
            running = "frozen" if place.status.frozen else str(place.status.running).lower()
        table.add_row(place.shard_id, place.workload_id, where,
                      str(route.generation) if route else "-", running,
                      blockers.get(place.shard_id, "yes"))  # fmt: skip
    console.print(table)
