"""Schema `plan` in DuckDB: plan runs, the analytic rows of their moves
(`plan.proposed_moves`), the candidate scores, and the SQL views documented in docs/planning.md.
Statuses and decisions live on the state backend (`skyshard.plans.statuses`); the views
`plan.migration_plan` and `plan.decisions` join them back in where SQL users look for them: in
the file itself with the embedded backend, in read snapshots with Postgres."""

from __future__ import annotations

import duckdb
import polars as pl

from skyshard import db
from skyshard.plans.build import PLAN_SCHEMA, RUN_SCHEMA
from skyshard.plans.status import MoveStatus, parse_status
from skyshard.plans.statuses import DECISION, DECISION_COLUMNS, PlanStatuses
from skyshard.scoring.bottlenecks import BOTTLENECK_SCHEMA

_TYPES = {
    pl.String: "VARCHAR",
    pl.Datetime("us"): "TIMESTAMP",
    pl.Float64: "DOUBLE",
    pl.Int64: "BIGINT",
}
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
ANALYTIC_SCHEMA = {name: kind for name, kind in PLAN_SCHEMA.items() if name not in DECISION}
"""`plan.proposed_moves`: what the planner decided about a move, never changed afterwards."""
MOVED = (MoveStatus.APPROVED.value, MoveStatus.RUNNING.value, MoveStatus.DONE.value)

VIEWS = {
    "migration_plan": "select "
    + ", ".join(f"{'s' if name in DECISION else 'p'}.{name}" for name in PLAN_SCHEMA)
    + " from plan.proposed_moves p join ops.plan_moves s using (move_id)",
    "decisions": f"select {', '.join(DECISION_COLUMNS)} from ops.plan_decisions",
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
"""In order: each view reads only tables and the views before it."""
VIEW_DDL = tuple(f"CREATE OR REPLACE VIEW plan.{name} AS {sql}" for name, sql in VIEWS.items())


def _columns(schema: dict) -> str:
    return ", ".join(f'"{name}" {_TYPES[kind]}' for name, kind in schema.items())


def ensure_plan_schema(con: duckdb.DuckDBPyConnection, statuses: PlanStatuses) -> None:
    """The `plan` tables, and its views over the statuses when they are in this file (with
    Postgres, read snapshots define them; the file keeps none that would show stale ones)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS plan")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS plan.plan_runs ({_columns(RUN_SCHEMA)}, "
        "PRIMARY KEY (plan_run_id))"
    )
    _take_over_legacy(con, statuses)
    con.execute(
        f"CREATE TABLE IF NOT EXISTS plan.proposed_moves ({_columns(ANALYTIC_SCHEMA)}, "
        "PRIMARY KEY (move_id))"
    )
    if statuses.in_file:
        for statement in VIEW_DDL:
            con.execute(statement)
    else:
        for name in reversed(VIEWS):
            con.execute(f"DROP VIEW IF EXISTS plan.{name}")


def _take_over_legacy(con: duckdb.DuckDBPyConnection, statuses: PlanStatuses) -> None:
    """A file from before statuses moved to the state backend keeps its moves in the table
    `plan.migration_plan` and its decisions in the table `plan.decisions`: hand the statuses
    and decisions over, keep the analytic rows."""
    legacy = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'plan' "
        "AND table_name = 'migration_plan' AND database_name = current_database()"
    ).fetchall()[0][0]
    if not legacy:
        return
    moves = con.sql("SELECT * FROM plan.migration_plan").pl()
    decisions = con.sql(
        "SELECT move_id, row_number() OVER (PARTITION BY move_id ORDER BY decided_at, rowid) "
        "AS seq, * EXCLUDE (move_id) FROM plan.decisions"
    ).pl()
    statuses.import_legacy(moves, decisions)
    with db.transaction(con):
        for name in ("savings_by_provider", "current_plan"):
            con.execute(f"DROP VIEW IF EXISTS plan.{name}")
        con.execute(
            f"CREATE TABLE plan.proposed_moves ({_columns(ANALYTIC_SCHEMA)}, PRIMARY KEY (move_id))"
        )
        con.execute(
            f"INSERT INTO plan.proposed_moves SELECT {', '.join(ANALYTIC_SCHEMA)} "
            "FROM plan.migration_plan"
        )
        con.execute("DROP TABLE plan.migration_plan")
        con.execute("DROP TABLE plan.decisions")


def write_plan(
    con: duckdb.DuckDBPyConnection, statuses: PlanStatuses, run: pl.DataFrame, plan: pl.DataFrame
) -> int:
    """Store a plan run and its moves; ids already stored are kept as they are (with their
    statuses), and moves still proposed by earlier runs that this one drops are rejected
    (`PlanStatuses.register`). Returns how many moves were new."""
    ensure_plan_schema(con, statuses)
    try:
        with db.transaction(con):
            con.register("_run", run.to_arrow())
            con.register("_plan", plan.select(list(ANALYTIC_SCHEMA)).to_arrow())
            con.execute("INSERT OR IGNORE INTO plan.plan_runs SELECT * FROM _run")
            con.execute("INSERT OR IGNORE INTO plan.proposed_moves SELECT * FROM _plan")
    finally:
        con.unregister("_run")
        con.unregister("_plan")
    # After the analytic rows: a move is visible once both halves are stored, and a run that
    # stopped between the two is completed by storing the same plan again.
    return statuses.register(plan, run["plan_run_id"][0])


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


def list_moves(
    con: duckdb.DuckDBPyConnection, statuses: PlanStatuses, status: str | None = None
) -> pl.DataFrame:
    """Stored moves with their statuses now, newest plan run first; only those with `status`
    when given."""
    ensure_plan_schema(con, statuses)
    decided = statuses.moves([parse_status(status).value] if status else [])
    analytic = con.sql("SELECT * FROM plan.proposed_moves").pl()
    joined = analytic.join(decided.select("move_id", *DECISION), on="move_id")
    return joined.select(list(PLAN_SCHEMA)).sort(
        ["created_at", "move_id"], descending=[True, False]
    )


def cycles_since_move(con: duckdb.DuckDBPyConnection, statuses: PlanStatuses) -> dict[str, int]:
    """Per shard, how many plan runs have been made since the run that last moved it (moves
    approved or further), for the hysteresis rule."""
    ensure_plan_schema(con, statuses)
    moved = statuses.moves(MOVED).select("shard_id", "plan_run_id")
    con.register("_moved", moved.to_arrow())
    try:
        rows = con.execute(
            """
            with last_move as (
                select m.shard_id, max(r.created_at) as moved_at
                from _moved m join plan.plan_runs r using (plan_run_id)
                group by m.shard_id
            )
            select l.shard_id, count(r.plan_run_id) as cycles
            from last_move l left join plan.plan_runs r on r.created_at > l.moved_at
            group by l.shard_id
            """
        ).fetchall()
    finally:
        con.unregister("_moved")
    return {shard: int(cycles) for shard, cycles in rows}
