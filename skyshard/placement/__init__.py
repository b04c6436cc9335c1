"""Global placement of shards on hosts (the broker's MILP), with a greedy baseline."""

from __future__ import annotations

from skyshard.lazy import lazy_exports

EXPORTS = {
    "Budget": "model",
    "CandidateCost": "model",
    "CandidateTable": "model",
    "Dependency": "model",
    "HostSupply": "model",
    "Move": "model",
    "PlacementInput": "model",
    "PlacementResult": "model",
    "RESOURCES": "model",
    "ShardDemand": "model",
    "SolveOptions": "solve",
    "Status": "model",
    "Violation": "constraints.base",
    "check_assignment": "check",
    "greedy_placement": "greedy",
    "solve_placement": "solve",
}
__getattr__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)
