"""The `skyshard` command line: what an operator does outside the Dagster UI."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from skyshard import db, demo_run, ingest, paths
from skyshard.config import ConfigError, Sky, load_sky
from skyshard.embedded_hosts.run import running_sky
from skyshard.home import resolve_home
from skyshard.plans.cli import backtest, plan, whatif
from skyshard.sky_tables import routed_hosts, sky_frames
from skyshard.sources.base import Window
from skyshard.trust.cli import ledger
from skyshard.trust.trust_cli import trust

console = Console()


@click.group()
@click.version_option(package_name="skyshard")
def main() -> None:
    """skyshard: see bottlenecks coming, plan placements, migrate shards with an audit trail."""


@main.command("check-config")
@click.argument("home", required=False, type=click.Path(file_okay=False, path_type=Path))
def check_config(home: Path | None) -> None:
    """Validate providers.yaml, workloads.yaml and policy.yaml in HOME (default: SKYSHARD_HOME)."""
    home = home or resolve_home()
    sky = _load(home)
    console.print(
        f"[green]ok[/green] {home}: {len(sky.providers)} providers, {len(sky.hosts)} hosts, "
        f"{len(sky.workloads)} workloads → {len(sky.shards)} shards"
    )


@main.command("ingest")
@click.option("--days", default=14, show_default=True, help="How far back to ask live feeds.")
def ingest_command(days: int) -> None:
    """Ingest every telemetry feed into DuckDB (the same code the Dagster asset runs)."""
    sky = _load(resolve_home())
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


@main.command("demo")
def demo() -> None:
    """Run the main job on the embedded demo sky (or SKYSHARD_HOME) and summarise what it built.

    On the embedded demo sky it then migrates the most urgent moves over the embedded SSH
    hosts and checks that every key written before a move is readable after it."""
    home = resolve_home()
    sky = _load(home)
    embedded = paths.skyshard_home() is None
    console.print(f"sky: {home} ({'embedded demo' if embedded else 'yours'})")
    try:
        if not embedded:
            console.print(f"running Dagster job {demo_run.MAIN_JOB} …")
            demo_run.run_dagster_job(demo_run.MAIN_JOB)
            _print_summary(sky)
            return
        with running_sky(home) as hosts:
            console.print(f"embedded SSH hosts serving: {len(hosts.specs)} on 127.0.0.1")
            console.print(f"running Dagster job {demo_run.MAIN_JOB} …")
            demo_run.run_dagster_job(demo_run.MAIN_JOB)
            _print_summary(sky)
            results = demo_run.migrate_demo_moves(sky, home, console.print)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    _print_migrations(results)


def _print_migrations(results) -> None:
    table = Table("shard", "from", "to", "now on", "keys intact", title="Migrations over SSH")
    for (_, shard, source, target), check in results:
        intact = f"{check.intact}/{check.expected}"
        style = "green" if check.ok and check.host_id == target else "red"
        table.add_row(shard, source, target, str(check.host_id), f"[{style}]{intact}[/{style}]")
    console.print(table)
    problems = [p for _, check in results for p in check.problems]
    problems += [
        f"{shard} is still on {check.host_id}, not {target}"
        for (_, shard, _, target), check in results
        if check.host_id != target
    ]
    for problem in problems:
        console.print(f"[red]{problem}[/red]")
    if problems:
        raise click.ClickException("some demo shards lost data or did not move")


def _print_summary(sky: Sky) -> None:
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
    console.print(table)
    ahead = Table("shard", "cause", "expected at", "hours ahead", title="Bottlenecks ahead")
    for shard_id, cause, expected_at, hours in bottlenecks:
        ahead.add_row(shard_id, cause, str(expected_at), f"{hours:.0f}")
    console.print(ahead)
    if plan_run:
        status, moves, gap, explanation = plan_run[0]
        gap_text = f", gap {gap:.2%}" if gap is not None else ""
        console.print(f"plan: solver {status}{gap_text}, {moves} moves proposed")
        if explanation:
            console.print(f"  why: {explanation}")
    console.print(
        f"{len(sky.providers)} providers, {len(sky.hosts)} hosts, {len(sky.shards)} shards; "
        f"{quarantined} rows quarantined\n"
        f"DuckDB file: {paths.duckdb_path()}\n"
        "Explore: .venv/bin/skyshard sql 'select * from plan.current_plan'\n"
        "Review:  .venv/bin/skyshard plan list; .venv/bin/skyshard whatif SHARD_ID\n"
        "Dagster UI: make dev, then open http://127.0.0.1:3000"
    )


def _load(home: Path) -> Sky:
    try:
        return load_sky(home)
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from None


main.add_command(ledger)
main.add_command(trust)
main.add_command(plan)
main.add_command(whatif)
main.add_command(backtest)
