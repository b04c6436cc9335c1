"""The `skyshard` command line: what an operator does outside the Dagster UI.

Imports are lazy: `--help`, `--version` and read-only commands load only what they use, so
they start in a fraction of a second (bench/bench_cli_startup.py)."""

from __future__ import annotations

import importlib
import shutil
import sys
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console

    from skyshard.config import Sky

# Command groups defined elsewhere: (module:attribute, one-line help shown by `--help`).
LAZY_COMMANDS = {
    "ledger": (
        "skyshard.trust.cli:ledger",
        "The signed transparency ledger of every run, migration and decision.",
    ),
    "plan": (
        "skyshard.plans.cli:plan",
        "Review migration plans: list moves, approve or reject them.",
    ),
    "trust": (
        "skyshard.trust.trust_cli:trust",
        "Trust scores, signed audit attestations and disputes (all recorded in the ledger).",
    ),
    "whatif": (
        "skyshard.plans.cli:whatif",
        "Would SHARD_ID move now, where, and why: the score breakdown of every candidate host.",
    ),
}


class LazyGroup(click.Group):
    """A group whose LAZY_COMMANDS are imported only when run (their help text is kept here,
    so listing them imports nothing)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attribute = LAZY_COMMANDS[cmd_name][0].split(":")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS:
                rows.append((name, LAZY_COMMANDS[name][1]))
            else:
                rows.append((name, self.commands[name].get_short_help_str(formatter.width)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@cache
def console() -> Console:
    from rich.console import Console

    return Console()


@click.group(cls=LazyGroup)
@click.version_option(package_name="skyshard")
def main() -> None:
    """skyshard: see bottlenecks coming, plan placements, migrate shards with an audit trail."""


@main.command("check-config")
@click.argument("home", required=False, type=click.Path(file_okay=False, path_type=Path))
def check_config(home: Path | None) -> None:
    """Validate providers.yaml, workloads.yaml and policy.yaml in HOME (default: SKYSHARD_HOME)."""
    from skyshard.home import resolve_home

    home = home or resolve_home()
    sky = _load(home)
    console().print(
        f"[green]ok[/green] {home}: {len(sky.providers)} providers, {len(sky.hosts)} hosts, "
        f"{len(sky.workloads)} workloads → {len(sky.shards)} shards"
    )


@main.command("ingest")
@click.option("--days", default=14, show_default=True, help="How far back to ask live feeds.")
def ingest_command(days: int) -> None:
    """Ingest every telemetry feed into DuckDB (the same code the Dagster asset runs)."""
    from rich.progress import Progress
    from rich.table import Table

    from skyshard import db, ingest, paths
    from skyshard.home import refresh_demo_sky, resolve_home
    from skyshard.sky_tables import routed_hosts, sky_frames
    from skyshard.sources.base import Window

    refresh_demo_sky()
    sky = _load(resolve_home())
    now = datetime.now(UTC).replace(tzinfo=None)
    window = Window(start=now - timedelta(days=days), end=now)
    pairs = ingest.sources_of(sky.providers)
    with db.connect(paths.duckdb_path()) as con:
        for name, frame in sky_frames(sky, routed_hosts(paths.duckdb_path())).items():
            db.replace_table(con, f"raw.{name}", frame)
    with Progress(console=console()) as progress:
        task = progress.add_task("ingesting feeds", total=len(pairs))

        def advance(done: int, total: int, outcome: ingest.FeedOutcome) -> None:
            progress.update(task, completed=done, description=outcome.source.id)

        results = ingest.ingest_all(sky, window, paths.duckdb_path(), advance)
    table = Table("feed", "provider", "status", "rows", "quarantined")
    for outcome in results:
        status = "[green]ok[/green]" if outcome.ok else f"[red]{outcome.error}[/red]"
        table.add_row(
            outcome.source.id,
            outcome.provider_id,
            status,
            str(outcome.rows),
            str(outcome.quarantined),
        )
    console().print(table)
    if not all(c.ok for c in results):
        sys.exit(1)


@main.command("sql")
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "markdown"]),
    default="table",
    show_default=True,
    help="table: aligned columns, one block per row when wider than the terminal.",
)
@click.option(
    "--limit",
    default=1000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Rows to print at most (0: all); a cut is always reported on stderr.",
)
def sql(query: str, fmt: str, limit: int) -> None:
    """Run a read-only SQL QUERY on the DuckDB file and print the result."""
    import duckdb

    from skyshard import db, paths
    from skyshard.tabular import render

    path = paths.duckdb_path()
    if not path.exists():
        raise click.ClickException(f"no DuckDB file at {path} (SKYSHARD_DUCKDB); run a job first")
    try:
        with db.connect(path, read_only=True) as con:
            cursor = con.execute(query)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall() if limit == 0 else cursor.fetchmany(limit + 1)
    except duckdb.Error as exc:
        raise click.ClickException(f"query on {path} failed: {exc}") from None
    cut = limit and len(rows) > limit
    rows = rows[:limit] if cut else rows
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    click.echo(render(columns, rows, fmt, width))
    if cut:
        click.echo(f"(first {limit} rows shown; --limit 0 prints all)", err=True)


@main.command("demo")
def demo() -> None:
    """Run the main job on the embedded demo sky (or SKYSHARD_HOME) and summarise what it built.

    On the embedded demo sky it then migrates the most urgent moves over the embedded SSH
    hosts and checks that every key written before a move is readable after it."""
    from skyshard import demo_run, paths
    from skyshard.embedded_hosts.run import running_sky
    from skyshard.home import resolve_home

    home = resolve_home()
    sky = _load(home)
    embedded = paths.skyshard_home() is None
    console().print(f"sky: {home} ({'embedded demo' if embedded else 'yours'})")
    try:
        if not embedded:
            console().print(f"running Dagster job {demo_run.MAIN_JOB} …")
            demo_run.run_dagster_job(demo_run.MAIN_JOB)
            _print_summary(sky)
            return
        with running_sky(home) as hosts:
            console().print(f"embedded SSH hosts serving: {len(hosts.specs)} on 127.0.0.1")
            console().print(f"running Dagster job {demo_run.MAIN_JOB} …")
            demo_run.run_dagster_job(demo_run.MAIN_JOB)
            _print_summary(sky)
            results = demo_run.migrate_demo_moves(sky, home, console().print)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    _print_migrations(results)


@main.command("dev")
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
def dev(port: int) -> None:
    """The Dagster UI; on the embedded demo sky also its SSH hosts and every demo shard, so
    proposed moves can be approved and migrated from the UI. All stop when the UI stops."""
    from skyshard import demo_run, paths
    from skyshard.embedded_hosts.demo import start_demo_shards
    from skyshard.embedded_hosts.run import running_sky
    from skyshard.embedded_hosts.server import HostServerError
    from skyshard.home import PORT_BASE_ENV, refresh_demo_sky

    if paths.skyshard_home() is not None:
        sys.exit(demo_run.dagster_dev(port))
    home = refresh_demo_sky()
    sky = _load(home)
    try:
        with running_sky(home) as hosts:
            start_demo_shards(sky, home, [shard.id for shard in sky.shards])
            ports = sorted(spec.port for spec in hosts.specs)
            console().print(
                f"demo sky {home}: {len(hosts.specs)} SSH hosts on 127.0.0.1:{ports[0]}-"
                f"{ports[-1]}, {len(sky.shards)} shards running; UI on http://127.0.0.1:{port}"
            )
            code = demo_run.dagster_dev(port)
    except HostServerError as exc:
        raise click.ClickException(
            f"{exc}\nIf a port is taken, set {PORT_BASE_ENV} to the first of another free block."
        ) from None
    sys.exit(code)


def _print_migrations(results) -> None:
    from rich.table import Table

    table = Table("shard", "from", "to", "now on", "keys intact", title="Migrations over SSH")
    for (_, shard, source, target), check in results:
        intact = f"{check.intact}/{check.expected}"
        style = "green" if check.ok and check.host_id == target else "red"
        table.add_row(shard, source, target, str(check.host_id), f"[{style}]{intact}[/{style}]")
    console().print(table)
    problems = [p for _, check in results for p in check.problems]
    problems += [
        f"{shard} is still on {check.host_id}, not {target}"
        for (_, shard, _, target), check in results
        if check.host_id != target
    ]
    for problem in problems:
        console().print(f"[red]{problem}[/red]")
    if problems:
        raise click.ClickException("some demo shards lost data or did not move")


def _print_summary(sky: Sky) -> None:
    from rich.table import Table

    from skyshard import db, paths

    with db.connect(paths.duckdb_path(), read_only=True) as con:
        marts = db.table_counts(con, "marts")
        quarantined = db.table_counts(con, "raw").get("quarantine", 0)
        bottlenecks = con.execute(
            "SELECT shard_id, cause, expected_at, hours_ahead FROM forecast.predicted_bottlenecks "
            "ORDER BY hours_ahead LIMIT 5"
        ).fetchall()
        plan_run = con.execute(
            "SELECT solver_status, moves, gap, explanation FROM plan.plan_runs "
            "ORDER BY created_at DESC LIMIT 1"
        ).fetchall()
    table = Table("mart", "rows", title="What was built")
    for name, count in marts.items():
        table.add_row(f"marts.{name}", f"{count:,}")
    console().print(table)
    ahead = Table("shard", "cause", "expected at", "hours ahead", title="Bottlenecks ahead")
    for shard_id, cause, expected_at, hours in bottlenecks:
        ahead.add_row(shard_id, cause, str(expected_at), f"{hours:.0f}")
    console().print(ahead)
    if plan_run:
        status, moves, gap, explanation = plan_run[0]
        gap_text = f", gap {gap:.2%}" if gap is not None else ""
        console().print(f"plan: solver {status}{gap_text}, {moves} moves proposed")
        if explanation:
            console().print(f"  why: {explanation}")
    console().print(
        f"{len(sky.providers)} providers, {len(sky.hosts)} hosts, {len(sky.shards)} shards; "
        f"{quarantined} rows quarantined\n"
        f"DuckDB file: {paths.duckdb_path()}\n"
        "Explore: .venv/bin/skyshard sql 'select * from plan.current_plan'\n"
        "Review:  .venv/bin/skyshard plan list; .venv/bin/skyshard whatif SHARD_ID\n"
        "Dagster UI: make dev, then open http://127.0.0.1:3000"
    )


def _load(home: Path) -> Sky:
    from skyshard.config import ConfigError, load_sky

    try:
        return load_sky(home)
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from None
