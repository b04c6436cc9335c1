"""`skyshard demo`: the main job on the embedded demo sky, then real migrations of the most
urgent moves over the embedded SSH hosts, checked key by key.

The demo stands in for an operator: it approves the top `DEMO_MOVES` proposed moves
(bottlenecks first) with `skyshard-demo` as the approver, runs the `migrate_shard` job for
each, and reads every key written before the move back from the shard's new location."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import click
from rich.table import Table

from skyshard import db
from skyshard.cli.common import console, load_or_fail
from skyshard.config import paths
from skyshard.config.sky import Sky
from skyshard.embedded_hosts.demo import ShardCheck, start_demo_shards, verify_demo_shards
from skyshard.embedded_hosts.run import running_sky
from skyshard.embedded_hosts.server import HostServerError
from skyshard.ledger import Ledger
from skyshard.plans.status import MoveStatus
from skyshard.plans.statuses import PlanStatuses
from skyshard.sim.home import PORT_BASE_ENV, refresh_demo_sky, resolve_home
from skyshard.trust.events import record_operator_decision

MAIN_JOB = "planning_cycle"
MIGRATION_JOB = "migrate_shard"
LEDGER_CATCH_UP = "sensors.ledger"
DEMO_MOVES = 3
DEMO_APPROVER = "skyshard-demo"
REASON_ORDER = "CASE reason WHEN 'bottleneck' THEN 0 WHEN 'incident' THEN 1 ELSE 2 END"


def run_dagster_job(job: str, config: dict | None = None) -> None:
    """Run a job of the code location through Dagster's CLI (recorded in DAGSTER_HOME), then
    record it in the ledger and sign a checkpoint, as the daemon's run sensors would."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    command = [dagster, "job", "execute", "-m", "orchestration.definitions", "-j", job]
    with tempfile.TemporaryDirectory() as folder:
        if config is not None:
            config_file = Path(folder) / "run_config.json"  # JSON is YAML
            config_file.write_text(json.dumps(config))
            command += ["--config", str(config_file)]
        completed = subprocess.run(command, env=os.environ.copy(), check=False)
    # No daemon runs the ledger's run sensors here: record the run and checkpoint directly.
    recorded = subprocess.run([sys.executable, "-m", LEDGER_CATCH_UP], check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"Dagster job {job} failed (exit {completed.returncode})")
    if recorded.returncode != 0:
        raise RuntimeError(f"recording run of {job} in the ledger failed")


def dagster_dev(port: int) -> int:
    """`dagster dev` on the workspace (code location `skyshard`) until it exits; returns its
    exit code. Ctrl-C reaches it too (same process group), so it is waited for, not killed."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    workspace = Path(__file__).resolve().parents[2] / "workspace.yaml"
    command = [dagster, "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, cwd=workspace.parent, env=os.environ.copy())
    try:
        return process.wait()
    except KeyboardInterrupt:
        return process.wait()


def urgent_moves(limit: int) -> list[tuple[str, str, str, str]]:
    """(move id, shard, from host, to host) of the most urgent proposed moves."""
    proposed = list(PlanStatuses(paths.duckdb_path()).moves([MoveStatus.PROPOSED])["move_id"])
    with db.connect(paths.duckdb_path(), read_only=True) as con:
        return con.execute(
            "SELECT move_id, shard_id, from_host_id, to_host_id FROM plan.proposed_moves "
            f"WHERE list_contains(?, move_id) ORDER BY {REASON_ORDER}, saving_per_day DESC "
            "LIMIT ?",
            [proposed, limit],
        ).fetchall()


def start_all_demo_shards(sky: Sky, home: Path, say: Callable[[str], None]) -> None:
    """Start and register every shard before planning: the planner proposes moves only for
    shards the broker can migrate, which are the registered ones."""
    placed = start_demo_shards(sky, home, [shard.id for shard in sky.shards])
    say(f"started {len(placed)} demo shards with known keys on the embedded hosts")


def migrate_demo_moves(
    sky: Sky, home: Path, say: Callable[[str], None]
) -> list[tuple[tuple[str, str, str, str], ShardCheck]]:
    """Approve, migrate and verify the most urgent moves; the hosts must be serving and the
    shards started (`start_all_demo_shards`)."""
    moves = urgent_moves(DEMO_MOVES)
    if not moves:
        say("no proposed moves to migrate")
        return []
    shard_ids = [shard for _, shard, _, _ in moves]
    ledger = Ledger.open()
    statuses = PlanStatuses(paths.duckdb_path())
    for move_id, *_ in moves:
        reason = "approved by skyshard demo"
        row = statuses.decide(move_id, MoveStatus.APPROVED, DEMO_APPROVER, reason)
        record_operator_decision(row, "approved", DEMO_APPROVER, reason, "demo", ledger)
    for move_id, shard, source, target in moves:
        say(f"migrating {shard}: {source} -> {target} ({move_id})")
        config = {"ops": {"migrate": {"config": {"move_id": move_id}}}}
        try:
            run_dagster_job(MIGRATION_JOB, config)
        except RuntimeError as error:
            say(f"  {error}; the move is recorded as failed or rolled back")
    checks = {c.shard_id: c for c in verify_demo_shards(shard_ids)}
    return [(move, checks[move[1]]) for move in moves]


@click.command("demo")
def demo() -> None:
    """Run the main job on the embedded demo sky (or SKYSHARD_HOME) and summarise what it built.

    On the embedded demo sky it then migrates the most urgent moves over the embedded SSH
    hosts and checks that every key written before a move is readable after it."""
    home = resolve_home()
    sky = load_or_fail(home)
    embedded = paths.skyshard_home() is None
    console.print(f"sky: {home} ({'embedded demo' if embedded else 'yours'})")
    try:
        if not embedded:
            console.print(f"running Dagster job {MAIN_JOB} …")
            run_dagster_job(MAIN_JOB)
            _print_summary(sky)
            return
        with running_sky(home) as hosts:
            console.print(f"embedded SSH hosts serving: {len(hosts.specs)} on 127.0.0.1")
            start_all_demo_shards(sky, home, console.print)
            console.print(f"running Dagster job {MAIN_JOB} …")
            run_dagster_job(MAIN_JOB)
            _print_summary(sky)
            results = migrate_demo_moves(sky, home, console.print)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    _print_migrations(results)


@click.command("dev")
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
def dev(port: int) -> None:
    """The Dagster UI, with the demo sky's SSH hosts and shards running alongside.

    On the embedded demo sky every proposed move can then be approved and migrated from the
    UI; the hosts and shards stop when the UI stops. With SKYSHARD_HOME: the UI only."""
    if paths.skyshard_home() is not None:
        sys.exit(dagster_dev(port))
    home = refresh_demo_sky()
    sky = load_or_fail(home)
    try:
        with running_sky(home) as hosts:
            start_demo_shards(sky, home, [shard.id for shard in sky.shards])
            ports = sorted(spec.port for spec in hosts.specs)
            console.print(
                f"demo sky {home}: {len(hosts.specs)} SSH hosts on 127.0.0.1:{ports[0]}-"
                f"{ports[-1]}, {len(sky.shards)} shards running; UI on http://127.0.0.1:{port}"
            )
            code = dagster_dev(port)
    except HostServerError as exc:
        raise click.ClickException(
            f"{exc}\nIf a port is taken, set {PORT_BASE_ENV} to the first of another free block."
        ) from None
    sys.exit(code)


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
