"""One planning cycle without any orchestrator: outlook, bottlenecks, candidate scores, the
global placement, and the plan rows, from the marts' data and a forecast table."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from skyshard.config.policy import PolicyFile
from skyshard.forecast import forecast_series
from skyshard.forecast.run import ForecastResult, ProgressCallback, StageCallback
from skyshard.placement import PlacementResult, SolveOptions, solve_placement
from skyshard.plans.build import build_plan, plan_run_row
from skyshard.plans.ids import inputs_hash
from skyshard.scoring import (
    Outlook,
    PlanningData,
    build_outlook,
    forecast_input,
    forecast_limits,
    placement_input,
)
from skyshard.scoring.bottlenecks import predict_bottlenecks
from skyshard.scoring.candidates import score_candidates
from skyshard.scoring.problem import pin_unmovable, stuck_shards


@dataclass(frozen=True)
class PlanningCycle:
    outlook: Outlook
    bottlenecks: pl.DataFrame
    scores: pl.DataFrame
    result: PlacementResult
    inputs: str
    plan: pl.DataFrame
    run: pl.DataFrame


def plan_forecasts(
    data: PlanningData,
    policy: PolicyFile,
    series: Collection[str] | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    on_stage: StageCallback | None = None,
) -> ForecastResult:
    """The planning cycle's forecaster: every series planning reads (or those in `series`),
    forecast with the policy's settings. The `demand_forecasts` asset and the backtest's
    replay both call this, so a replay measures the forecaster that runs."""
    settings = policy.forecast
    frame = forecast_input(data)
    if series is not None:
        frame = frame.filter(pl.col("series_id").is_in(list(series)))
    return forecast_series(
        frame,
        settings,
        limits=forecast_limits(data),
        on_progress=on_progress,
        on_stage=on_stage,
    )


def assess(
    data: PlanningData,
    forecasts: pl.DataFrame,
    policy: PolicyFile,
    trust: pl.DataFrame,
    bottlenecks: pl.DataFrame | None = None,
):
    """Outlook, bottlenecks and candidate scores: everything before the solver. `bottlenecks`
    as the forecast stage stored them (`read_bottlenecks`); predicted here only without them."""
    outlook = build_outlook(data, forecasts, policy.forecast.horizon_hours)
    if bottlenecks is None:
        bottlenecks = predict_bottlenecks(data, outlook)
    scores = score_candidates(data, outlook, policy, trust)
    return outlook, bottlenecks, scores


def plan_cycle(
    data: PlanningData,
    forecasts: pl.DataFrame,
    policy: PolicyFile,
    trust: pl.DataFrame,
    cycles_since_move: Mapping[str, int] | None = None,
    created_at: datetime | None = None,
    options: SolveOptions | None = None,
    bottlenecks: pl.DataFrame | None = None,
    unmovable: Mapping[str, str] | None = None,
) -> PlanningCycle:
    """`unmovable`: shards the broker cannot migrate (and why); they stay where they are."""
    created_at = (created_at or datetime.now(UTC)).replace(tzinfo=None)
    horizon = policy.forecast.horizon_hours
    outlook, bottlenecks, scores = assess(data, forecasts, policy, trust, bottlenecks)
    scores = pin_unmovable(scores, unmovable or {})
    problem = placement_input(data, outlook, scores, policy, cycles_since_move)
    result = solve_placement(problem, options)
    inputs = inputs_hash(scores, policy, outlook.as_of, horizon)
    plan = build_plan(result, scores, bottlenecks, policy, inputs, horizon, created_at)
    stuck = stuck_shards(scores)
    run = plan_run_row(result, plan, stuck, inputs, outlook.as_of, horizon, created_at)
    return PlanningCycle(outlook, bottlenecks, scores, result, inputs, plan, run)
