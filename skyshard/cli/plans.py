"""Command line for plans: `skyshard plan list|approve|reject`, `skyshard whatif SHARD_ID` and
`skyshard backtest`.

`plan list` imports only DuckDB and polars; the rest loads what it needs when it runs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from skyshard.cli.tabular import FORMATS, cell, render
from skyshard.plans.status import MoveStatus

if TYPE_CHECKING:
    import polars as pl
    from rich.table import Table

    from skyshard.plans.whatif import ShardAssessment

OPERATOR_ENV = "SKYSHARD_OPERATOR"


def _table(frame: pl.DataFrame, columns: tuple[str, ...], title: str | None = None) -> Table:
    from rich.table import Table

    table = Table(title=title)
    for i, name in enumerate(columns):
        # The first column is the id users copy: never cut it short.
        width = max((len(cell(v)) for v in frame[name]), default=0) if i == 0 else None
        table.add_column(name, no_wrap=i == 0, min_width=width, overflow="fold")
    for row in frame.select(columns).iter_rows():
        table.add_row(*(cell(v) for v in row))
    return table


@click.group("plan")
def plan() -> None:
    """Review migration plans: list moves, approve or reject them."""


@plan.command("list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in MoveStatus]),
    help="Only moves with this status.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table: aligned columns, one block per move when wider than the terminal.",
)
def list_command(status: str | None, fmt: str) -> None:
    """List stored moves, newest plan run first."""
    from skyshard import db
    from skyshard.config import paths
    from skyshard.plans.statuses import PlanStatuses
    from skyshard.plans.store import PLAN_COLUMNS, list_moves

    columns = (*PLAN_COLUMNS, "approved_by")
    statuses = PlanStatuses(paths.duckdb_path())
    with db.connect(paths.duckdb_path()) as con:
        moves = list_moves(con, statuses, status)
    if moves.is_empty() and fmt == "table":
        click.echo("no moves" + (f" with status {status}" if status else ""))
        return
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    click.echo(render(columns, moves.select(columns).rows(), fmt, width))


def _decide(move_id: str, target: MoveStatus, by: str, reason: str | None) -> None:
    import duckdb

    from skyshard import db
    from skyshard.config import paths
    from skyshard.ledger import Ledger, LedgerError
    from skyshard.plans.status import PlanError
    from skyshard.plans.statuses import PlanStatuses
    from skyshard.trust.events import record_operator_decision

    try:
        row = PlanStatuses(paths.duckdb_path()).decide(move_id, target, by, reason)
        record_operator_decision(row, target.value, by, reason, "cli", Ledger.open())
    except PlanError as exc:
        raise click.ClickException(str(exc)) from None
    except (duckdb.IOException, db.WriterLockTimeout) as exc:
        raise click.ClickException(f"cannot open {paths.duckdb_path()}: {exc}") from None
    except LedgerError as exc:
        message = f"{move_id} is {target.value}, but the ledger refused to record it: {exc}"
        raise click.ClickException(message) from exc
    click.echo(
        f"{row['move_id']}: {row['shard_id']} {row['from_host_id']} -> "
        f"{row['to_host_id']} is now {row['status']} (by {by})"
    )


_by_option = click.option(
    "--by",
    envvar=OPERATOR_ENV,
    required=True,
    help=f"Who decides (your name or id); default: ${OPERATOR_ENV}. Stored with the decision.",
)


@plan.command("approve")
@click.argument("move_id")
@_by_option
@click.option("--reason", help="Why (stored with the decision).")
def approve(move_id: str, by: str, reason: str | None) -> None:
    """Approve the proposed move MOVE_ID."""
    _decide(move_id, MoveStatus.APPROVED, by, reason)


@plan.command("reject")
@click.argument("move_id")
@_by_option
@click.option("--reason", help="Why (stored with the decision).")
def reject(move_id: str, by: str, reason: str | None) -> None:
    """Reject the move MOVE_ID (proposed or approved, not yet running)."""
    _decide(move_id, MoveStatus.REJECTED, by, reason)


def print_assessment(assessment: ShardAssessment) -> None:
    from skyshard.cli.common import console
    from skyshard.scoring import TERMS

    request = assessment.request
    if request is None:
        console.print(f"[bold]{assessment.shard_id}[/]: stay ({assessment.why_not})")
    else:
        console.print(
            f"[bold]{request.shard_id}[/]: move {request.from_host} -> {request.to_host} "
            f"({request.reason}: {request.detail}); saves {request.saving_per_day:.2f}/day, "
            f"risk {request.risk:.2f}, {request.estimated_bytes / 1024**3:.1f} GiB, "
            f"downtime {request.downtime_s:.1f} s"
        )
    if not assessment.bottlenecks.is_empty():
        console.print(
            _table(
                assessment.bottlenecks,
                ("cause", "resource", "expected_at", "hours_ahead", "detail"),
                "bottlenecks ahead",
            )
        )
    console.print(
        _table(
            assessment.scores.sort("total"),
            ("host_id", "provider_id", "is_current", *TERMS, "total", "risk", "blocked_by"),
            "candidates (cost over the horizon)",
        )
    )


@click.command("whatif")
@click.argument("shard_id")
def whatif(shard_id: str) -> None:
    """Would SHARD_ID move now, where, and why: the score breakdown of every candidate host."""
    import duckdb

    from skyshard import db
    from skyshard.config import ConfigError, paths
    from skyshard.forecast.store import read_stored
    from skyshard.ledger import Ledger, LedgerError
    from skyshard.plans.whatif import assess_shard
    from skyshard.scoring import load_planning_data
    from skyshard.scoring.trust_inputs import read_trust_scores
    from skyshard.sim.home import current_sky
    from skyshard.trust.scores import check_trust_inputs

    path = paths.duckdb_path()
    try:
        policy = current_sky().policy
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from None
    try:
        with db.connect(path, read_only=True) as con:
            data = load_planning_data(con)
            forecasts = read_stored(con, "forecast.forecasts")
            trust = read_trust_scores(
                con, data.providers["provider_id"], policy.trust.neutral_score
            )
        check_trust_inputs(trust, Ledger.open(), policy.trust.neutral_score)
        assessment = assess_shard(shard_id, data, policy, trust, forecasts)
    except duckdb.CatalogException as exc:
        missing = str(exc).splitlines()[0]
        raise click.ClickException(
            f"{path} has no planning data yet ({missing}); run the planning cycle first"
        ) from None
    except (ValueError, duckdb.Error, LedgerError) as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    print_assessment(assessment)


@click.command("backtest")
@click.option("--step-h", default=6, show_default=True, help="Hours between decisions.")
@click.option("--warmup-h", default=72, show_default=True, help="History hours before the window.")
@click.option("--window-h", type=int, default=None, help="Hours replayed (default: to the end).")
@click.option("--days", default=28, show_default=True, help="Days of stored history to read.")
@click.option(
    "--policies",
    default=None,
    help="Comma-separated policies to replay (default: static, reactive, greedy_cheapest, "
    "predictive, oracle).",
)
@click.option(
    "--time-limit-s", default=30.0, show_default=True, help="Per planning cycle in the replay."
)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a PNG chart of cost, overload shard-hours and migrations here.",
)
def backtest(
    step_h: int,
    warmup_h: int,
    window_h: int | None,
    days: int,
    policies: str | None,
    time_limit_s: float,
    chart: Path | None,
) -> None:
    """Replay stored history with each policy, the predictive one through the live planning
    cycle (forecaster, scoring, placement, policy), against the hindsight oracle."""
    import duckdb

    from skyshard import db
    from skyshard.cli.common import console
    from skyshard.config import paths
    from skyshard.plans.backtest import BacktestOptions, backtest_chart, policy_backtest
    from skyshard.scoring import load_planning_data
    from skyshard.sim.home import current_sky

    policy = current_sky().policy
    try:
        chosen = (
            {}
            if policies is None
            else {"policies": tuple(p.strip() for p in policies.split(",") if p.strip())}
        )
        options = BacktestOptions(
            step_h=step_h,
            warmup_h=warmup_h,
            window_h=window_h,
            time_limit_s=time_limit_s,
            **chosen,
        )
        with db.connect(paths.duckdb_path()) as con:
            data = load_planning_data(con, history_days=days)
        table = policy_backtest(data, policy, options)
    except (ValueError, duckdb.Error) as exc:
        raise click.ClickException(str(exc)) from None
    columns = tuple(c for c in table.columns if c not in ("hours", "step_h"))
    console.print(_table(table, columns, f"backtest: {table['hours'][0]} h, step {step_h} h"))
    if chart is not None:
        console.print(f"chart: {backtest_chart(table, chart)}")
