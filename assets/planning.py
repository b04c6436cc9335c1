"""Planning assets: candidate scores, the migration plan and its run history (schema `plan`),
and the policy backtest; the moves open to review are reported to `assets.review`."""

from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from assets.forecasts import MART_DEPS, predicted_bottlenecks
from assets.metadata import markdown_bars, png, preview, problems_check, table_metadata
from assets.review import report_proposed_moves
from assets.trust import trust_scores
from orchestration.resources import DUCKDB_WRITER_POOL, DuckDBFile, LedgerResource, SkyResource
from skyshard import db
from skyshard.broker.lifecycle import migration_blockers
from skyshard.broker.ops_tables import OpsStore
from skyshard.ledger import LedgerError
from skyshard.plans import PlanStatuses, cycles_since_move, plan_cycle, write_plan
from skyshard.plans.backtest import POLICIES, BacktestOptions, backtest_chart
from skyshard.plans.backtest import policy_backtest as run_policy_backtest
from skyshard.plans.charts import saving_by_term_chart
from skyshard.plans.checks import plan_problems
from skyshard.plans.decisions import plan_decisions
from skyshard.plans.store import PLAN_COLUMNS, read_bottlenecks, write_candidate_scores
from skyshard.plans.terms import move_terms, saving_by_term
from skyshard.scoring import load_planning_data
from skyshard.scoring.trust_inputs import read_trust_scores
from skyshard.trust.events import record_policy_decisions
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
            description="`plan.proposed_moves` and `plan.plan_runs`: the moves the placement "
            "solver proposes this cycle, with reasons, savings and risks; their statuses and "
            "approvals on the state backend (`ops.plan_moves`), both in the view "
            "`plan.migration_plan`.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "moves_are_feasible",
            asset=MIGRATION_PLAN,
            description="The latest run moves each shard at most once, from its current host, "
            "to a host the candidate scores allow.",
        )
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
    loaded = sky.load()
    policy = loaded.policy
    unmovable = migration_blockers(loaded, OpsStore(duckdb.path).routes())
    statuses = PlanStatuses(duckdb.path)
    with duckdb.connect() as con:
        data = load_planning_data(con)
        forecasts = con.sql("select * from forecast.forecasts").pl()
        trust = read_trust_scores(con, data.providers["provider_id"], policy.trust.neutral_score)
        cycles = cycles_since_move(con, statuses)
        bottlenecks = read_bottlenecks(con)
    log = ledger.open()
    try:
        check_trust_inputs(trust, log, policy.trust.neutral_score)
    except (TrustInputError, LedgerError) as exc:
        message = f"refusing to plan on trust scores the ledger does not vouch for: {exc}"
        raise dg.Failure(message) from exc
    cycle = plan_cycle(
        data, forecasts, policy, trust, cycles, bottlenecks=bottlenecks, unmovable=unmovable
    )
    if unmovable:
        context.log.warning(
            f"{len(unmovable)} shard(s) stay where they are, the broker cannot migrate them: "
            + "; ".join(f"{shard}: {why}" for shard, why in sorted(unmovable.items())[:10])
        )
    with duckdb.connect() as con:
        write_candidate_scores(con, cycle.scores)
        new = write_plan(con, statuses, cycle.run, cycle.plan)
        scores_table = table_metadata(con, "plan.candidate_scores")
        plan_table = table_metadata(con, "plan.proposed_moves")
        check = problems_check("moves_are_feasible", plan_problems(con), MIGRATION_PLAN)
    run = cycle.run.row(0, named=True)
    decisions = plan_decisions(policy, run["plan_run_id"], cycle.plan, cycle.scores)
    record_policy_decisions(decisions, context.run_id, "planner", log)
    context.log.info(
        f"plan run {run['plan_run_id']}: {run['solver_status']}, {run['moves']} moves "
        f"({new} new, {run['auto_approved']} auto-approved)"
    )
    if run["explanation"]:
        context.log.warning(run["explanation"])
    terms = move_terms(cycle.plan, cycle.scores)
    report_proposed_moves(context, duckdb, cycle.plan, terms)
    savings = saving_by_term(terms)
    yield dg.MaterializeResult(
        asset_key=CANDIDATE_SCORES,
        metadata={
            **scores_table,
            "blocked": cycle.scores.filter(~pl.col("allowed")).height,
        },
    )
    yield dg.MaterializeResult(
        asset_key=MIGRATION_PLAN,
        metadata={
            **plan_table,
            "plan_run_id": run["plan_run_id"],
            "saving_per_day": float(cycle.plan["saving_per_day"].fill_null(0.0).sum()),
            "moves_proposed": run["moves"],
            "bytes_to_move": int(cycle.plan["estimated_bytes"].sum()),
            "solver_status": run["solver_status"],
            "gap": run["gap"],
            "objective": run["objective"],
            "new_moves": new,
            "unmovable_shards": len(unmovable),
            "moves": preview(cycle.plan.select(PLAN_COLUMNS), 20),
            "saving_by_term": png(
                saving_by_term_chart(savings, run["horizon_h"]), "plan saving by score term"
            ),
            "explanation": dg.MetadataValue.md(run["explanation"] or "_feasible_"),
        },
        check_results=[check],
    )


class BacktestConfig(dg.Config):
    """Launchpad options; the defaults replay everything after three days of warm-up."""

    step_h: int = 6
    warmup_h: int = 72
    window_h: int | None = None
    history_days: int = 28
    policies: list[str] = Field(default_factory=lambda: list(POLICIES))
    time_limit_s: float = 30.0


@dg.asset(
    key=["plan", "policy_backtest"],
    group_name=GROUP,
    deps=MART_DEPS,
    kinds={"duckdb", "python"},
    pool=DUCKDB_WRITER_POOL,
    description="`plan.policy_backtest`: static, reactive, greedy, predictive (the live "
    "planning cycle) and hindsight-oracle placement replayed over the stored history, with an "
    "LP lower bound and a PNG chart.",
)
def policy_backtest(config: BacktestConfig, duckdb: DuckDBFile, sky: SkyResource):
    policy = sky.load().policy
    options = BacktestOptions(
        step_h=config.step_h,
        warmup_h=config.warmup_h,
        window_h=config.window_h,
        policies=tuple(config.policies),
        time_limit_s=config.time_limit_s,
    )
    with duckdb.connect() as con:
        data = load_planning_data(con, history_days=config.history_days)
    table = run_policy_backtest(data, policy, options)
    with duckdb.connect() as con:
        db.replace_table(con, "plan.policy_backtest", table)
        described = table_metadata(con, "plan.policy_backtest")
    chart = "\n\n".join(
        markdown_bars(c, table.select("policy", c).rows())
        for c in ("total_cost", "overload_shard_hours", "migrations")
    )
    chart_file = backtest_chart(table, Path(duckdb.path).parent / "reports" / "policy_backtest.png")
    return dg.MaterializeResult(
        metadata={
            **described,
            "comparison": dg.MetadataValue.md(chart),
            "chart": dg.MetadataValue.path(str(chart_file)),
            "lower_bound": float(table["lower_bound"][0]),
            "table": preview(table),
        }
    )


defs = dg.Definitions(assets=[migration_planning, policy_backtest])
