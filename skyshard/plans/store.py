"""Schema `plan` in DuckDB: plan runs, moves, their decisions, the candidate scores, and the
SQL views documented in docs/planning.md. Writes are idempotent and decisions never drop rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import duckdb
import polars as pl

from skyshard import db
from skyshard.plans.build import PLAN_SCHEMA, RUN_SCHEMA
from skyshard.plans.status import MoveStatus, PlanError, check_transition, parse_status
from skyshard.scoring.bottlenecks import BOTTLENECK_SCHEMA

_TYPES = {
    pl.String: "VARCHAR",
    pl.Datetime("us"): "TIMESTAMP",
    pl.Float64: "DOUBLE",
    pl.Int64: "BIGINT",
}
# Who decided: a name or a service id, printable and short (it lands in tables and the UI).
PLAN_COLUMNS = (
    "move_id",
    "shard_id",
    "from_host_id",
    "to_host_id",
    "reason",
    "saving_per_day",
    "risk",
    "status",
)
"""The columns people scan first when reviewing a plan (CLI list, asset preview)."""
SUPERSEDER = "planner"
DECIDER = re.compile(r"^[A-Za-z0-9_.@:+-]{1,64}$")
MOVE_ID = re.compile(r"^mv-[0-9a-f]{16}$")

VIEWS = {
    "current_plan": """
        select m.* from plan.migration_plan m
        where m.plan_run_id = (
            select plan_run_id from plan.plan_runs order by created_at desc, plan_run_id limit 1)
        order by m.saving_per_day desc nulls last, m.move_id""",
    "savings_by_provider": """
        select to_provider_id as provider_id, count(*) as moves_in,
            sum(saving_per_day) as saving_per_day, sum(estimated_bytes) as bytes_in,
            count(*) filter (where status in ('approved', 'running', 'done')) as accepted
        from plan.current_plan where status <> 'rejected'
        group by all order by saving_per_day desc nulls last""",
}


def _columns(schema: dict) -> str:
    return ", ".join(f'"{name}" {_TYPES[kind]}' for name, kind in schema.items())


def ensure_plan_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS plan")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS plan.plan_runs ({_columns(RUN_SCHEMA)}, "
        "PRIMARY KEY (plan_run_id))"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS plan.migration_plan ({_columns(PLAN_SCHEMA)}, "
        "PRIMARY KEY (move_id))"
    )
    con.execute(
        "CREATE TABLE IF NOT EXISTS plan.decisions (move_id VARCHAR, from_status VARCHAR, "
        "to_status VARCHAR, decided_by VARCHAR, note VARCHAR, decided_at TIMESTAMP)"
    )
    for name, sql in VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW plan.{name} AS {sql}")


def write_plan(con: duckdb.DuckDBPyConnection, run: pl.DataFrame, plan: pl.DataFrame) -> int:
    """Store a plan run and its moves; ids already stored are kept as they are (with their
    decisions). Returns how many moves were new."""
    ensure_plan_schema(con)
    try:
        with db.transaction(con):
            con.register("_run", run.to_arrow())
            con.register("_plan", plan.to_arrow())
            con.execute("INSERT OR IGNORE INTO plan.plan_runs SELECT * FROM _run")
            before = con.execute("SELECT count(*) FROM plan.migration_plan").fetchall()[0][0]
            con.execute("INSERT OR IGNORE INTO plan.migration_plan SELECT * FROM _plan")
            after = con.execute("SELECT count(*) FROM plan.migration_plan").fetchall()[0][0]
            _supersede(con, run["plan_run_id"][0])
    finally:
        con.unregister("_run")
        con.unregister("_plan")
    return after - before


def _supersede(con: duckdb.DuckDBPyConnection, plan_run_id: str) -> None:
    """Reject moves still proposed by earlier runs that the new run does not propose again:
    they were planned from an older picture of the sky (approved moves stay approved)."""
    stale = "status = 'proposed' AND move_id NOT IN (SELECT move_id FROM _plan)"
    at = datetime.now(UTC).replace(tzinfo=None)
    note = f"superseded by plan run {plan_run_id}"
    con.execute(
        "INSERT INTO plan.decisions SELECT move_id, status, 'rejected', ?, ?, ? "
        f"FROM plan.migration_plan WHERE {stale}",
        [SUPERSEDER, note, at],
    )
    con.execute(
        "UPDATE plan.migration_plan SET status = 'rejected', decided_at = ?, decision_note = ? "
        f"WHERE {stale}",
        [at, note],
    )


def write_candidate_scores(con: duckdb.DuckDBPyConnection, scores: pl.DataFrame) -> int:
    return db.replace_table(con, "plan.candidate_scores", scores)


def write_bottlenecks(con: duckdb.DuckDBPyConnection, bottlenecks: pl.DataFrame) -> int:
    """`forecast.predicted_bottlenecks`, and the view `plan.bottlenecks_ahead` over it."""
    count = db.replace_table(con, "forecast.predicted_bottlenecks", bottlenecks)
    con.execute("CREATE SCHEMA IF NOT EXISTS plan")
    con.execute(
        "CREATE OR REPLACE VIEW plan.bottlenecks_ahead AS "
        "SELECT * FROM forecast.predicted_bottlenecks ORDER BY expected_at, shard_id"
    )
    return count


def read_bottlenecks(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The bottlenecks `write_bottlenecks` stored, typed as `predict_bottlenecks` returns them."""
    stored = con.sql("SELECT * FROM forecast.predicted_bottlenecks").pl()
    return stored.select(BOTTLENECK_SCHEMA.keys()).cast(BOTTLENECK_SCHEMA)


def decide(
    con: duckdb.DuckDBPyConnection,
    move_id: str,
    target: MoveStatus | str,
    by: str,
    note: str | None = None,
    now: datetime | None = None,
) -> dict:
    """Move `move_id` to `target` (approved, rejected, running, ...) if the transition is
    allowed, recording who and why; returns the updated row. Nothing changes on error."""
    target = parse_status(str(target))
    if not MOVE_ID.match(move_id):
        raise PlanError(f"move id {move_id!r} is malformed: expected 'mv-' and 16 hex digits")
    if not DECIDER.match(by):
        raise PlanError(f"--by {by!r} is not a valid name: 1-64 letters, digits or _ . @ : + -")
    if note is not None and len(note) > 500:
        raise PlanError(f"--reason is {len(note)} characters long; at most 500 are kept")
    ensure_plan_schema(con)
    found = con.execute(
        "SELECT status FROM plan.migration_plan WHERE move_id = ?", [move_id]
    ).fetchall()
    if not found:
        raise PlanError(f"no move with id {move_id!r} in plan.migration_plan")
    check_transition(move_id, found[0][0], target)
    at = (now or datetime.now(UTC)).replace(tzinfo=None)
    approving = target == MoveStatus.APPROVED
    with db.transaction(con):
        con.execute(
            "UPDATE plan.migration_plan SET status = ?, decided_at = ?, decision_note = ?, "
            "approved_by = CASE WHEN ? THEN ? ELSE approved_by END, "
            "approval_mode = CASE WHEN ? THEN 'manual' ELSE approval_mode END "
            "WHERE move_id = ?",
            [target.value, at, note, approving, by, approving, move_id],
        )
        con.execute(
            "INSERT INTO plan.decisions VALUES (?, ?, ?, ?, ?, ?)",
            [move_id, found[0][0], target.value, by, note, at],
        )
    return get_move(con, move_id)


def get_move(con: duckdb.DuckDBPyConnection, move_id: str) -> dict:
    rows = con.sql("SELECT * FROM plan.migration_plan WHERE move_id = ?", params=[move_id]).pl()
    if rows.is_empty():
        raise PlanError(f"no move with id {move_id!r} in plan.migration_plan")
    return rows.row(0, named=True)


def list_moves(con: duckdb.DuckDBPyConnection, status: str | None = None) -> pl.DataFrame:
    """Stored moves, newest plan run first; only those with `status` when given."""
    ensure_plan_schema(con)
    sql = "SELECT * FROM plan.migration_plan"
    params: list = []
    if status is not None:
        sql += " WHERE status = ?"
        params.append(parse_status(status).value)
    return con.sql(sql + " ORDER BY created_at DESC, move_id", params=params).pl()


def cycles_since_move(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Per shard, how many plan runs have been made since the run that last moved it (moves
    approved or further), for the hysteresis rule."""
    ensure_plan_schema(con)
    rows = con.execute(
        """
        with last_move as (
            select m.shard_id, max(r.created_at) as moved_at
            from plan.migration_plan m join plan.plan_runs r using (plan_run_id)
            where m.status in ('approved', 'running', 'done')
            group by m.shard_id
        )
        select l.shard_id, count(r.plan_run_id) as cycles
        from last_move l left join plan.plan_runs r on r.created_at > l.moved_at
        group by l.shard_id
        """
    ).fetchall()
    return {shard: int(cycles) for shard, cycles in rows}
