"""Global placement of shards on hosts (the broker's MILP), with a greedy baseline."""

from __future__ import annotations

from skyshard.placement.check import Violation, check_assignment
from skyshard.placement.greedy import greedy_placement
from skyshard.placement.model import (
    RESOURCES,
    Budget,
    CandidateCost,
    CandidateTable,
    Dependency,
    HostSupply,
    Move,
    PlacementInput,
    PlacementResult,
    ShardDemand,
    Status,
)
from skyshard.placement.solve import SolveOptions, solve_placement

__all__ = [
    "RESOURCES",
    "Budget",
    "CandidateCost",
    "CandidateTable",
    "Dependency",
    "HostSupply",
    "Move",
    "PlacementInput",
    "PlacementResult",
    "ShardDemand",
    "SolveOptions",
    "Status",
    "Violation",
    "check_assignment",
    "greedy_placement",
    "solve_placement",
]
