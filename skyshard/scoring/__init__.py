"""Scoring shard x host candidates from the marts and forecasts: the data planning reads, the
horizon outlook, the named cost terms with policy blocks, and the solver input built from them."""

from __future__ import annotations

from skyshard.lazy import lazy_exports

EXPORTS = {
    "Outlook": "outlook",
    "PlanningData": "data",
    "SCORE_COLUMNS": "candidates",
    "TERMS": "candidates",
    "build_outlook": "outlook",
    "candidate_table": "candidates",
    "downtime_seconds": "candidates",
    "forecast_input": "data",
    "forecast_limits": "data",
    "latency_map": "candidates",
    "load_planning_data": "data",
    "placement_input": "problem",
    "planning_budget": "problem",
    "score_candidates": "candidates",
}
__getattr__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)
