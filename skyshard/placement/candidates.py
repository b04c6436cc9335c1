"""Enumerates the (shard, host) pairs the solver may choose, and prunes them to the top-K."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from skyshard.placement.instance import NO_INDEX, Instance


class CurrentHost(IntEnum):
    """Where a shard stands before this cycle; every state but STAYABLE frees it to move."""

    NEW = 0  # no current host: placing it is not a move
    STAYABLE = 1  # current host allowed and not over capacity: hysteresis applies
    GONE = 2  # current host no longer supplied
    BLOCKED = 3  # current host not allowed (policy, trust, ...) or not scored
    OVERLOADED = 4  # current host over capacity at the forecast upper bound
    CONFLICTED = 5  # current placement breaks a rule between shards (latency, groups)


@dataclass(frozen=True, eq=False)
class Candidates:
    """Eligible candidates as parallel arrays (sorted by shard, host) plus per-shard facts."""

    row: np.ndarray  # row in the Instance candidate arrays
    shard: np.ndarray
    host: np.ndarray
    cost: np.ndarray
    stays: np.ndarray  # the candidate is the shard's current host
    blocked_stay: np.ndarray  # staying where the policy no longer allows the shard
    is_move: np.ndarray  # choosing it moves the shard off its current host
    state: np.ndarray  # (shards,) CurrentHost

    def __len__(self) -> int:
        return len(self.row)


def overloaded_hosts(inst: Instance) -> np.ndarray:
    """(hosts,) True where the shards currently there exceed a capacity-like limit (a resource,
    the GPU devices)."""
    over = np.zeros(inst.n_hosts, dtype=bool)
    for family in inst.constraints:
        found = family.overloaded_hosts(inst)
        if found is not None:
            over |= found
    return over


def _in_conflict_now(inst: Instance) -> np.ndarray:
    """(shards,) True where the current placement breaks a rule (latency limit, group rule)."""
    conflicted = np.zeros(inst.n_shards, dtype=bool)
    for family in inst.constraints:
        found = family.conflicted_shards(inst)
        if found is not None:
            conflicted |= found
    return conflicted


def current_host_states(inst: Instance) -> np.ndarray:
    state = np.full(inst.n_shards, CurrentHost.STAYABLE, dtype=np.int64)
    placed = inst.current != NO_INDEX
    current_allowed = np.zeros(inst.n_shards, dtype=bool)
    at_current = inst.cand_host == inst.current[inst.cand_shard]
    current_allowed[inst.cand_shard[at_current & inst.cand_allowed]] = True
    state[placed & ~current_allowed] = CurrentHost.BLOCKED
    state[placed & current_allowed & _in_conflict_now(inst)] = CurrentHost.CONFLICTED
    state[placed & current_allowed & overloaded_hosts(inst)[inst.current]] = CurrentHost.OVERLOADED
    state[~placed & inst.has_current] = CurrentHost.GONE
    state[~inst.has_current] = CurrentHost.NEW
    return state


def stay_costs(inst: Instance) -> np.ndarray:
    """(shards,) cost of the current host's candidate row, NaN when there is none."""
    cost = np.full(inst.n_shards, np.nan)
    at_current = inst.cand_host == inst.current[inst.cand_shard]
    cost[inst.cand_shard[at_current]] = inst.cand_cost[at_current]
    return cost


def passes_hysteresis(inst: Instance, state: np.ndarray) -> np.ndarray:
    """(candidate rows,) whether choosing the row keeps the minimum saving and the cooldown
    (for a shard on an overloaded host: whether its relief pays for the move)."""
    budget = inst.budget
    shard = inst.cand_shard
    stay = stay_costs(inst)[shard]
    saving = stay - inst.cand_cost
    threshold = np.maximum(budget.min_saving_per_move, budget.min_relative_saving * np.abs(stay))
    cooled_down = inst.cycles_since_move[shard] >= budget.min_cycles_between_moves
    voluntary_move_ok = cooled_down & (saving >= threshold)
    # relief pays for itself: its expected value plus the saving clears the same margin
    relief_ok = (state[shard] == CurrentHost.OVERLOADED) & (
        saving + inst.relief[shard] >= budget.min_saving_per_move
    )
    forced = (state[shard] != CurrentHost.STAYABLE) & (state[shard] != CurrentHost.OVERLOADED)
    return forced | relief_ok | (inst.cand_host == inst.current[shard]) | voluntary_move_ok


def eligible_candidates(
    inst: Instance, *, capacity: bool = True, hysteresis: bool = True, prune: bool = True
) -> Candidates:
    """Allowed candidates that fit their host alone, pass hysteresis and survive the families'
    prunes (affinity: a provider every member can use), plus every shard's current host:
    staying is always possible (the elastic model prices what it breaks), so there is always a
    plan.

    Each filter only removes pairs no rule-keeping assignment can use; the flags let the
    pre-checks and the greedy baseline leave some out.
    """
    state = current_host_states(inst)
    keep = inst.cand_allowed.copy()
    if capacity:
        keep &= inst.cand_fits_alone
    if hysteresis:
        keep &= passes_hysteresis(inst, state)
    if prune:
        for family in inst.constraints:
            keep = family.prune(inst, keep)
    keep |= inst.cand_host == inst.current[inst.cand_shard]
    rows = np.flatnonzero(keep)
    shard, host = inst.cand_shard[rows], inst.cand_host[rows]
    stays = host == inst.current[shard]
    return Candidates(
        row=rows,
        shard=shard,
        host=host,
        cost=inst.cand_cost[rows],
        stays=stays,
        blocked_stay=stays & ~inst.cand_allowed[rows],
        is_move=inst.has_current[shard] & ~stays,
        state=state,
    )


def _rank_within(group: np.ndarray, cands: Candidates) -> np.ndarray:
    """Each candidate's cost rank among candidates with the same group key (ties by host)."""
    order = np.lexsort((cands.host, cands.cost, group))
    sorted_group = group[order]
    first = np.searchsorted(sorted_group, sorted_group, side="left")
    rank = np.empty(len(cands), dtype=np.int64)
    rank[order] = np.arange(len(cands)) - first
    return rank


def top_k_mask(inst: Instance, cands: Candidates, k: int | None) -> np.ndarray:
    """Per shard, the k cheapest candidates, the cheapest host of every provider, and staying.

    The per-provider host keeps latency limits and affinity (both decided by provider) within
    reach of the pruned problem.
    """
    if k is None:
        return np.ones(len(cands), dtype=bool)
    by_provider = cands.shard * len(inst.provider_ids) + inst.host_provider[cands.host]
    return (
        (_rank_within(cands.shard, cands) < k)
        | (_rank_within(by_provider, cands) < 1)
        | cands.stays
    )
