"""`skyshard shard ...` (start, adopt, stop, status, list) and `skyshard move ...` (status,
resume, abort): the shard lifecycle and migrations from the command line, acting as the broker
with its key, pinned host keys and grants."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Iterator

import click
from rich.table import Table

from skyshard.broker import lifecycle
from skyshard.broker.execute import (
    MoveResult,
    abort_move,
    load_move,
    push_missed_routing,
    run_configured_move,
)
from skyshard.broker.from_config import broker_policy, host_accesses
from skyshard.broker.lease import MoveLeaseHeld
from skyshard.broker.migration import HostAccess, MigrationError
from skyshard.broker.ops_tables import NON_TERMINAL, OpsStore, RoutingConflict, now
from skyshard.cli.common import console
from skyshard.config import ConfigError, Sky, paths
from skyshard.plans.status import PlanError
from skyshard.sim.home import current_sky
from skyshard.transport.access import AccessDenied
from skyshard.transport.ssh import ConnectionPool, SshError
from skyshard.transport.validate import ValidationError

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


@click.group("move")
def move() -> None:
    """Status, resume and abort of a migration (what the stuck_migrations sensor automates)."""


@move.command("status")
@click.argument("move_id")
@click.option("--steps", default=8, show_default=True, help="Latest protocol steps to show.")
def move_status(move_id: str, steps: int) -> None:
    """The plan row, the protocol row, the lease and the latest steps of MOVE_ID."""
    try:
        planned = load_move(paths.duckdb_path(), move_id)
    except PlanError as error:
        raise click.ClickException(str(error)) from None
    ops = OpsStore(paths.duckdb_path())
    row, lease = ops.migration(move_id), ops.lease(move_id)
    console.print(f"{move_id}: {planned.shard_id} {planned.from_host} -> {planned.to_host}, "
                  f"plan status {planned.status}")  # fmt: skip
    if row is None:
        console.print("not started (no ops.migrations row)")
        return
    console.print(
        f"protocol: {row.status} at phase {row.phase}, attempt {row.attempt}, "
        f"{row.bytes_sent} bytes sent, updated {row.updated_at:%Y-%m-%d %H:%M:%S}"
    )
    if row.error:
        console.print(f"error: {row.error}")
    if lease is None:
        owner = "none" + (" (unfinished: resume it)" if row.status in NON_TERMINAL else "")
    else:
        alive = "live" if lease.live(now()) else "EXPIRED (its broker died: resume it)"
        owner = f"{lease.owner}, {alive}, expires {lease.expires_at:%H:%M:%S} UTC"
    console.print(f"lease: {owner}")
    for missed in ops.routing_backlog():
        if missed.move_id == move_id:
            console.print(
                f"routing out of date on {missed.host_id} since "
                f"{missed.missed_at:%Y-%m-%d %H:%M:%S}: {missed.attempts} pushes missed, last "
                f"{missed.last_error} (retried by the missed_routing_pushes sensor, or run "
                "`skyshard move push-routing`)"
            )
    table = Table("seq", "at", "phase", "detail")
    for step in ops.steps(move_id)[-steps:]:
        table.add_row(str(step.seq), f"{step.at:%H:%M:%S}", step.phase,
                      json.dumps(step.detail, default=str)[:120])  # fmt: skip
    console.print(table)


def _report(result: MoveResult) -> None:
    outcome = result.outcome
    console.print(f"{outcome.move_id}: {outcome.status} (plan {result.plan_status}), phase "
                  f"{outcome.phase}, attempt {outcome.attempt}")  # fmt: skip
    if outcome.error:
        console.print(f"error: {outcome.error}")
    if outcome.status != "done":
        raise SystemExit(1)


@move.command("resume")
@click.argument("move_id")
def move_resume(move_id: str) -> None:
    """Run MOVE_ID now: start it, or resume it (forward past the commit point, else back and
    again), refusing while another broker holds its lease."""
    run_id = f"cli-{uuid.uuid4().hex[:12]}"
    try:
        result = run_configured_move(paths.duckdb_path(), move_id, current_sky(), run_id=run_id)
    except (PlanError, MoveLeaseHeld, *REFUSALS) as error:
        raise click.ClickException(f"{type(error).__name__}: {error}") from None
    _report(result)


@move.command("abort")
@click.argument("move_id")
@click.option("--by", required=True, help="Who aborts (recorded in the plan's decisions).")
def move_abort(move_id: str, by: str) -> None:
    """Roll MOVE_ID back (before its commit point) or reject it (not started yet)."""
    run_id = f"cli-{uuid.uuid4().hex[:12]}"
    try:
        result = abort_move(paths.duckdb_path(), move_id, current_sky(), by=by, run_id=run_id)
    except (PlanError, MoveLeaseHeld, MigrationError, *REFUSALS) as error:
        raise click.ClickException(f"{type(error).__name__}: {error}") from None
    console.print(f"{move_id}: {result.outcome.status} (plan {result.plan_status})")


@move.command("push-routing")
def move_push_routing() -> None:
    """Push the current routing document to every host that missed one (ops.routing_backlog)."""
    run_id = f"cli-{uuid.uuid4().hex[:12]}"
    try:
        results = push_missed_routing(paths.duckdb_path(), current_sky(), run_id=run_id)
    except REFUSALS as error:
        raise click.ClickException(f"{type(error).__name__}: {error}") from None
    if not results:
        console.print("every host has the current routing document")
    for host_id, error in sorted(results.items()):
        console.print(f"{host_id}: " + (f"missed again ({error})" if error else "delivered"))
    if any(results.values()):
        raise SystemExit(1)
