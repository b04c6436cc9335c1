"""The root `skyshard` command group, its small commands, and the topic groups attached to it.

Imports are lazy: `--help`, `--version` and read-only commands load only what they use, so
they start in a fraction of a second (bench/bench_cli_startup.py)."""

from __future__ import annotations

import importlib
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

# Commands defined in other modules: (module:attribute, one-line help shown by `--help`).
LAZY_COMMANDS = {
    "backtest": (
        "skyshard.cli.plans:backtest",
        "Replay stored history with each policy, the predictive one through the live planning "
        "cycle (forecaster, scoring, placement, policy), against the hindsight oracle.",
    ),
    "demo": (
        "skyshard.cli.demo:demo",
        "Run the main job on the embedded demo sky (or SKYSHARD_HOME) and summarise what it built.",
    ),
    "dev": (
        "skyshard.cli.demo:dev",
        "The Dagster UI, with the demo sky's SSH hosts and shards running alongside.",
    ),
    "move": (
        "skyshard.cli.shards:move",
        "Status, resume and abort of a migration (what the stuck_migrations sensor automates).",
    ),
    "ledger": (
        "skyshard.cli.ledger:ledger",
        "The signed transparency ledger of every run, migration and decision.",
    ),
    "plan": (
        "skyshard.cli.plans:plan",
        "Review migration plans: list moves, approve or reject them.",
    ),
    "shard": (
        "skyshard.cli.shards:shard",
        "Start, adopt, stop and inspect shards; started or adopted shards can be migrated.",
    ),
    "trust": (
        "skyshard.cli.trust:trust",
        "Trust scores, signed audit attestations and disputes (all recorded in the ledger).",
    ),
    "whatif": (
        "skyshard.cli.plans:whatif",
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


@click.group(cls=LazyGroup)
@click.version_option(package_name="skyshard")
def main() -> None:
    """skyshard: see bottlenecks coming, plan placements, migrate shards with an audit trail."""


@main.command("check-config")
@click.argument("home", required=False, type=click.Path(file_okay=False, path_type=Path))
def check_config(home: Path | None) -> None:
    """Validate providers.yaml, workloads.yaml and policy.yaml in HOME (default: SKYSHARD_HOME)."""
    from skyshard.cli.common import console, load_or_fail
    from skyshard.placement.constraints import rules_from_config
    from skyshard.sim.home import resolve_home

    home = home or resolve_home()
    sky = load_or_fail(home)
    try:
        rules_from_config([(r.rule, r.fields()) for r in sky.policy.placement_rules])
    except ValueError as error:
        raise click.ClickException(
            f"invalid configuration:\n{home / 'policy.yaml'}: {error}"
        ) from None
    console.print(
        f"[green]ok[/green] {home}: {len(sky.providers)} providers, {len(sky.hosts)} hosts, "
        f"{len(sky.workloads)} workloads → {len(sky.shards)} shards"
    )


@main.command("ingest")
@click.option("--days", default=14, show_default=True, help="How far back to ask live feeds.")
def ingest_command(days: int) -> None:
    """Ingest every telemetry feed into DuckDB (the same code the Dagster asset runs)."""
    from rich.progress import Progress
    from rich.table import Table

    from skyshard import db
    from skyshard.broker.ops_tables import routed_hosts
    from skyshard.cli.common import console, load_or_fail
    from skyshard.config import paths
    from skyshard.config.sky_tables import sky_frames
    from skyshard.sim.home import refresh_demo_sky, resolve_home
    from skyshard.sources import ingest
    from skyshard.sources.base import Window

    refresh_demo_sky()
    sky = load_or_fail(resolve_home())
    now = datetime.now(UTC).replace(tzinfo=None)
    window = Window(start=now - timedelta(days=days), end=now)
    pairs = ingest.sources_of(sky.providers)
    with db.connect(paths.duckdb_path()) as con:
        for name, frame in sky_frames(sky, routed_hosts(paths.duckdb_path())).items():
            db.replace_table(con, f"raw.{name}", frame)
    with Progress(console=console) as progress:
        task = progress.add_task("ingesting feeds", total=len(pairs))

        def advance(done: int, total: int, outcome: ingest.FeedOutcome) -> None:
            progress.update(task, completed=done, description=outcome.source.id)

        results = ingest.ingest_all(sky, window, paths.duckdb_path(), advance)
    table = Table("feed", "provider", "status", "rows", "quarantined")
    for outcome in results:
        status = "[green]ok[/green]" if outcome.ok else f"[red]{outcome.error}[/red]"
        if outcome.ok and outcome.warnings:
            status = "[yellow]" + "; ".join(outcome.warnings) + "[/yellow]"
        table.add_row(
            outcome.source.id,
            outcome.provider_id,
            status,
            str(outcome.rows),
            str(outcome.quarantined),
        )
    console.print(table)
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

    from skyshard import db
    from skyshard.cli.tabular import render
    from skyshard.config import paths

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
