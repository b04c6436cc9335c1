"""Inputs and outputs of the placement solver: shards, hosts, scored candidates, budget, result."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

RESOURCES: tuple[str, ...] = ("cpu", "mem_gb", "gpu", "net_mbps")


@dataclass(frozen=True)
class ShardDemand:
    """A shard's demand (the planning cycle gives its share of a host's upper quantile,
    `scoring.problem.pooled_demand`) and where it runs now.

    `current_host` None means the shard is new: placing it is not a move. `cycles_since_move`
    None means the shard never moved (the move cooldown does not hold it back). `relief`: what
    moving the shard off an overloaded current host is expected to save (the overload it takes
    off that host, in the candidates' currency); a relief move must not cost more than that
    over staying. None: relief is worth any price.
    """

    shard_id: str
    current_host: str | None
    cpu: float
    mem_gb: float
    gpu: float = 0.0
    net_mbps: float = 0.0
    affinity_group: str | None = None
    anti_affinity_group: str | None = None
    cycles_since_move: int | None = None
    relief: float | None = None


@dataclass(frozen=True)
class HostSupply:
    """Capacity a host can give, already net of reserved capacity and at the forecast bound.

    `gpu_devices` set means the host's GPUs are that many physical devices (of `gpu_model`,
    `gpu_memory_gb` each): a fractional-GPU shard then sits on one device and a multi-GPU shard
    takes whole devices. None keeps `gpu` a plain divisible amount (configs without devices).
    """

    host_id: str
    provider_id: str
    region: str
    cpu: float
    mem_gb: float
    gpu: float = 0.0
    net_mbps: float = 0.0
    gpu_devices: int | None = None
    gpu_model: str | None = None
    gpu_memory_gb: float | None = None


@dataclass(frozen=True)
class CandidateCost:
    """One scored (shard, host) pair; its cost is the sum of the named terms."""

    shard_id: str
    host_id: str
    terms: Mapping[str, float]
    allowed: bool = True
    blocked_by: str | None = None

    @property
    def total(self) -> float:
        return float(sum(self.terms.values()))


@dataclass(frozen=True, eq=False)
class CandidateTable:
    """Scored candidates in columns, so 10,000 shards x 200 hosts need no object per pair.

    Every array has one entry per candidate; `terms` maps a term name to its values.
    """

    shard_ids: np.ndarray
    host_ids: np.ndarray
    terms: Mapping[str, np.ndarray]
    allowed: np.ndarray
    blocked_by: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.shard_ids)
        lengths = {
            "host_ids": len(self.host_ids),
            "allowed": len(self.allowed),
            "blocked_by": len(self.blocked_by),
            **{f"terms[{name!r}]": len(values) for name, values in self.terms.items()},
        }
        for name, length in lengths.items():
            if length != n:
                raise ValueError(f"CandidateTable: {name} has {length} rows, shard_ids has {n}")

    def __len__(self) -> int:
        return len(self.shard_ids)

    @classmethod
    def from_costs(cls, costs: Iterable[CandidateCost]) -> CandidateTable:
        rows = list(costs)
        names = sorted({name for row in rows for name in row.terms})
        return cls(
            shard_ids=np.array([r.shard_id for r in rows], dtype=object),
            host_ids=np.array([r.host_id for r in rows], dtype=object),
            terms={
                name: np.array([r.terms.get(name, 0.0) for r in rows], dtype=float)
                for name in names
            },
            allowed=np.array([r.allowed for r in rows], dtype=bool),
            blocked_by=np.array([r.blocked_by for r in rows], dtype=object),
        )


@dataclass(frozen=True)
class Dependency:
    """Shards a and b must be placed on hosts at most `max_latency_ms` apart."""

    shard_a: str
    shard_b: str
    max_latency_ms: float


@dataclass(frozen=True)
class Budget:
    """How much the plan may change per cycle.

    - `max_moves`: at most this many shards leave their current host (None: no limit).
    - Hysteresis: a shard whose current host still allows it, is not over capacity and breaks
      no latency limit or group rule moves
      only if the move saves at least `min_saving_per_move` and at least `min_relative_saving`
      of its cost of staying, and only if its last move is `min_cycles_between_moves` or more
      cycles old. Savings are net of the candidate's migration cost term, so with stable costs
      a move back can never pass the threshold: shards do not flap.
    - A shard on an overloaded host with a `relief` value moves only where its saving plus
      that relief clears `min_saving_per_move` (the cooldown does not hold relief back).
    """

    max_moves: int | None = None
    min_saving_per_move: float = 0.0
    min_relative_saving: float = 0.0
    min_cycles_between_moves: int = 0


@dataclass(frozen=True)
class PlacementInput:
    """Everything the solver needs.

    `latency_ms` keys are (host, host) or (provider, provider) pairs, in either order; a host
    pair wins over its providers' pair. Same host is 0 ms. A pair with no entry (including two
    hosts of one provider without a (provider, provider) entry) has unknown latency and
    satisfies no limit. `rules` holds the inputs of constraint families that have no field of
    their own here (each family reads the items of its `rule_type`).
    """

    shards: Sequence[ShardDemand]
    hosts: Sequence[HostSupply]
    candidates: CandidateTable
    dependencies: Sequence[Dependency] = ()
    latency_ms: Mapping[tuple[str, str], float] = field(default_factory=dict)
    budget: Budget = Budget()
    rules: Sequence[object] = ()


class Status(StrEnum):
    """OPTIMAL and FEASIBLE_WITH_GAP keep every rule; PARTIAL is the best plan found that still
    leaves something unfixed (an overloaded host, an unplaced shard, a broken rule), listed in
    `PlacementResult.unfixed`. The planner never answers with no plan."""

    OPTIMAL = "optimal"
    FEASIBLE_WITH_GAP = "feasible_with_gap"
    PARTIAL = "partial"


@dataclass(frozen=True)
class Move:
    """A shard leaving its current host.

    `saving` is the cost of staying minus the cost of the new host, and `terms` the same per
    term; both are None when the current host has no scored candidate row. `reason` is
    "saving", "overloaded" (current host over capacity), "blocked: <why>", "host_gone" or
    "constraint" (the current placement breaks a latency limit, affinity or anti-affinity).
    """

    shard_id: str
    from_host: str
    to_host: str
    saving: float | None
    terms: Mapping[str, float] | None
    reason: str


@dataclass(frozen=True)
class PlacementResult:
    """The solver's answer.

    `objective` is the plan's cost plus `penalty` (the elastic model's price of what it leaves
    unfixed); `lp_bound` is the LP relaxation bound of the full (unpruned) elastic problem;
    `best_bound` the best proven lower bound; `gap` = (objective - best_bound) / |objective|.
    `unplaced` maps shards that got no host (new shards, or shards whose host is gone) to why;
    `unfixed` lists, by family, what the plan still breaks; `explanation` holds the pre-check
    verdicts (why it cannot all be fixed), then one "time limit" line per entry of `cut`: the
    phases the wall-clock limit skipped or stopped early (problem, LP, pricing, heuristic,
    MIP, pre-checks, fewer candidates per shard), each saying what the plan used instead.
    """

    status: Status
    assignment: Mapping[str, str]
    objective: float | None
    lp_bound: float | None
    best_bound: float | None
    gap: float | None
    build_seconds: float
    solve_seconds: float
    solver: str
    moves: tuple[Move, ...] = ()
    explanation: tuple[str, ...] = ()
    stats: Mapping[str, int] = field(default_factory=dict)
    penalty: float = 0.0
    unplaced: Mapping[str, str] = field(default_factory=dict)
    unfixed: tuple[str, ...] = ()
    cut: tuple[str, ...] = ()
