"""The root `skyshard` command group, its small commands, and the topic groups attached to it."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.progress import Progress
from rich.table import Table

from skyshard import db
from skyshard.broker.ops_tables import routed_hosts
from skyshard.cli.common import console, load_or_fail
from skyshard.cli.demo import demo
from skyshard.cli.ledger import ledger
from skyshard.cli.plans import plan, whatif
from skyshard.cli.trust import trust
from skyshard.config import paths
from skyshard.config.sky_tables import sky_frames
from skyshard.sim.home import resolve_home
from skyshard.sources import ingest
from skyshard.sources.base import Window


@click.group()
@click.version_option(package_name="skyshard")
def main() -> None:
    """skyshard: see bottlenecks coming, plan placements, migrate shards with an audit trail."""


@main.command("check-config")
@click.argument("home", required=False, type=click.Path(file_okay=False, path_type=Path))
def check_config(home: Path | None) -> None:
    """Validate providers.yaml, workloads.yaml and policy.yaml in HOME (default: SKYSHARD_HOME)."""
    home = home or resolve_home()
    sky = load_or_fail(home)
    console.print(
        f"[green]ok[/green] {home}: {len(sky.providers)} providers, {len(sky.hosts)} hosts, "
        f"{len(sky.workloads)} workloads → {len(sky.shards)} shards"
    )


@main.command("ingest")
@click.option("--days", default=14, show_default=True, help="How far back to ask live feeds.")
def ingest_command(days: int) -> None:
    """Ingest every telemetry feed into DuckDB (the same code the Dagster asset runs)."""
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
@click.option("--limit", default=50, show_default=True, help="Rows to print at most.")
def sql(query: str, limit: int) -> None:
    """Run a read-only SQL QUERY on the DuckDB file and print the result as a table."""
    try:
        with db.connect(paths.duckdb_path(), read_only=True) as con:
            cursor = con.execute(query)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchmany(limit)
    except Exception as exc:  # DuckDB raises many error types; all are the user's query's
        raise click.ClickException(f"query failed: {exc}") from None
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


main.add_command(demo)
main.add_command(ledger)
main.add_command(trust)
main.add_command(plan)
main.add_command(whatif)
