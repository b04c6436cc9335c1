"""Planning assets: candidate scores, the migration plan and its run history (schema `plan`),
the policy backtest, and the `review_plan` job that approves or rejects a move from the UI."""

import dagster as dg
import polars as pl

from assets.forecasts import MART_DEPS, predicted_bottlenecks
from assets.metadata import markdown_bars, preview
from assets.trust import trust_scores
from orchestration.resources import DUCKDB_WRITER_POOL, DuckDBFile, LedgerResource, SkyResource
from skyshard import db
from skyshard.ledger import LedgerError
from skyshard.plans import cycles_since_move, decide, plan_cycle, write_plan
from skyshard.plans.backtest import policy_backtest as run_policy_backtest
from skyshard.plans.decisions import plan_decisions
from skyshard.plans.store import PLAN_COLUMNS, read_bottlenecks, write_candidate_scores
from skyshard.scoring import load_planning_data
from skyshard.scoring.trust_inputs import read_trust_scores
from skyshard.trust.events import record_operator_decision, record_policy_decisions
from skyshard.trust.scores import TrustInputError, check_trust_inputs

GROUP = "planning"
CANDIDATE_SCORES = dg.AssetKey(["plan", "candidate_scores"])
MIGRATION_PLAN = dg.AssetKey(["plan", "migration_plan"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CANDIDATE_SCORES,
            group_name=GROUP,
            kinds={"duckdb", "python"},
            deps=[predicted_bottlenecks, trust_scores, *MART_DEPS],
            description="`plan.candidate_scores`: every shard x host with each cost term, "
            "policy blocks and the facts behind them.",
        ),
        dg.AssetSpec(
            MIGRATION_PLAN,
            group_name=GROUP,
            kinds={"duckdb", "python"},
            deps=[CANDIDATE_SCORES],
            description="`plan.migration_plan` and `plan.plan_runs`: the moves the placement "
            "solver proposes this cycle, with reasons, savings, risks and approvals.",
        ),
    ],
    pool=DUCKDB_WRITER_POOL,
)
def migration_planning(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBFile,
    sky: SkyResource,
    ledger: LedgerResource,
):
    """Score, solve and store one planning cycle; the same inputs give the same ids."""
    policy = sky.load().policy
    with duckdb.connect() as con:
        data = load_planning_data(con)
        forecasts = con.sql("select * from forecast.forecasts").pl()
        trust = read_trust_scores(con, data.providers["provider_id"], policy.trust.neutral_score)
        cycles = cycles_since_move(con)
        bottlenecks = read_bottlenecks(con)
    log = ledger.open()
    try:
        check_trust_inputs(trust, log, policy.trust.neutral_score)
    except (TrustInputError, LedgerError) as exc:
        message = f"refusing to plan on trust scores the ledger does not vouch for: {exc}"
        raise dg.Failure(message) from exc
    cycle = plan_cycle(data, forecasts, policy, trust, cycles, bottlenecks=bottlenecks)
    with duckdb.connect() as con:
        write_candidate_scores(con, cycle.scores)
        new = write_plan(con, cycle.run, cycle.plan)
    run = cycle.run.row(0, named=True)
    decisions = plan_decisions(policy, run["plan_run_id"], cycle.plan, cycle.scores)
    record_policy_decisions(decisions, context.run_id, "planner", log)
    context.log.info(
        f"plan run {run['plan_run_id']}: {run['solver_status']}, {run['moves']} moves "
        f"({new} new, {run['auto_approved']} auto-approved)"
    )
    if run["explanation"]:
        context.log.warning(run["explanation"])
    yield dg.MaterializeResult(
        asset_key=CANDIDATE_SCORES,
        metadata={
            "dagster/row_count": cycle.scores.height,
            "blocked": cycle.scores.filter(~pl.col("allowed")).height,
        },
    )
    yield dg.MaterializeResult(
        asset_key=MIGRATION_PLAN,
        metadata={
            "dagster/row_count": cycle.plan.height,
            "plan_run_id": run["plan_run_id"],
            "solver_status": run["solver_status"],
            "gap": run["gap"],
            "objective": run["objective"],
            "new_moves": new,
            "moves": preview(cycle.plan.select(PLAN_COLUMNS), 20),
            "explanation": dg.MetadataValue.md(run["explanation"] or "_feasible_"),
        },
    )


@dg.asset(
    key=["plan", "policy_backtest"],
    group_name=GROUP,
    deps=MART_DEPS,
    kinds={"duckdb", "python"},
    pool=DUCKDB_WRITER_POOL,
    description="`plan.policy_backtest`: static, reactive, greedy, predictive and oracle "
    "placement replayed over the stored history.",
)
def policy_backtest(duckdb: DuckDBFile, sky: SkyResource):
    policy = sky.load().policy
    with duckdb.connect() as con:
        data = load_planning_data(con)
    table = run_policy_backtest(data, policy)
    with duckdb.connect() as con:
        db.replace_table(con, "plan.policy_backtest", table)
    chart = "\n\n".join(
        markdown_bars(c, table.select("policy", c).rows())
        for c in ("total_cost", "overload_shard_hours", "migrations")
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.height,
            "comparison": dg.MetadataValue.md(chart),
            "table": preview(table),
        }
    )


class ReviewDecision(dg.Config):
    move_id: str
    decision: str = "approved"  # approved or rejected
    by: str
    reason: str | None = None


@dg.op(pool=DUCKDB_WRITER_POOL)
def review_move(
    context: dg.OpExecutionContext,
    config: ReviewDecision,
    duckdb: DuckDBFile,
    ledger: LedgerResource,
):
    """Approve or reject one move; a bad id or transition fails the run and changes nothing."""
    if config.decision not in ("approved", "rejected"):
        raise dg.Failure(f"decision {config.decision!r} must be 'approved' or 'rejected'")
    with duckdb.connect() as con:
        row = decide(con, config.move_id, config.decision, config.by, config.reason)
    via = f"dagster:review_plan run {context.run_id}"
    record_operator_decision(row, config.decision, config.by, config.reason, via, ledger.open())
    context.log.info(f"{row['move_id']} ({row['shard_id']}) is now {row['status']}")


@dg.job(description="Approve or reject a proposed move (config: move_id, decision, by).")
def review_plan():
    review_move()


defs = dg.Definitions(assets=[migration_planning, policy_backtest], jobs=[review_plan])
