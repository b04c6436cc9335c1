"""Scoring shard x host candidates from the marts and forecasts: the data planning reads, the
horizon outlook, the named cost terms with policy blocks, and the solver input built from them."""

from __future__ import annotations

from skyshard.scoring.candidates import (
    SCORE_COLUMNS,
    TERMS,
    candidate_table,
    downtime_seconds,
    latency_map,
    score_candidates,
)
from skyshard.scoring.data import (
    PlanningData,
    forecast_input,
    forecast_limits,
    load_planning_data,
)
from skyshard.scoring.outlook import Outlook, build_outlook
from skyshard.scoring.problem import placement_input, planning_budget

__all__ = [
    "SCORE_COLUMNS",
    "TERMS",
    "Outlook",
    "PlanningData",
    "build_outlook",
    "candidate_table",
    "downtime_seconds",
    "forecast_input",
    "forecast_limits",
    "latency_map",
    "load_planning_data",
    "placement_input",
    "planning_budget",
    "score_candidates",
]
