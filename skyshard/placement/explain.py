"""Says which constraints conflict for which shards when the placement problem is infeasible.

First the cheap local checks (one shard, one dependency, one group on its own); if none
fails, the constraint families are dropped one at a time, then two at a time, and each
relaxation that restores feasibility is reported with the shards its solution needs it for.
Each relaxation is screened with its LP first (an infeasible LP settles it at once) and the
whole search shares one time budget; a relaxation whose MIP runs out of time is reported as
undecided, never counted as infeasible.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from time import perf_counter

import numpy as np
from scipy import sparse

from skyshard.placement.candidates import (
    CurrentHost,
    eligible_candidates,
    fits_alone,
    overloaded_hosts,
)
from skyshard.placement.check import names, violations_of
from skyshard.placement.highs import MipOutcome, solve_lp, solve_mip
from skyshard.placement.instance import NO_INDEX, Instance
from skyshard.placement.model import RESOURCES
from skyshard.placement.problem import ALL_FAMILIES, Family, MilpProblem, build_problem

FAMILY_ORDER = (Family.CAPACITY, Family.LATENCY, Family.AFFINITY, Family.BUDGET, Family.HYSTERESIS)


def _shard_conflicts(inst: Instance) -> list[str]:
    out = []
    usable = inst.cand_allowed & fits_alone(inst, inst.cand_shard, inst.cand_host)
    has_usable = np.bincount(inst.cand_shard[usable], minlength=inst.n_shards) > 0
    for shard in np.flatnonzero(~has_usable):
        rows = np.flatnonzero(inst.cand_shard == shard)
        allowed = rows[inst.cand_allowed[rows]]
        name = inst.shard_ids[shard]
        if not len(rows):
            out.append(f"shard {name}: no candidate host was scored")
        elif not len(allowed):
            reasons = Counter(str(inst.cand_blocked_by[r] or "not allowed") for r in rows)
            listed = ", ".join(f"{why}: {n} hosts" for why, n in sorted(reasons.items()))
            out.append(f"shard {name}: every candidate host is blocked ({listed})")
        else:
            out.append(f"shard {name}: {_why_nothing_fits(inst, shard, inst.cand_host[allowed])}")
    return out


def _why_nothing_fits(inst: Instance, shard: int, hosts: np.ndarray) -> str:
    demand, capacity = inst.demand[shard], inst.capacity[hosts]
    short = []
    for res, name in enumerate(RESOURCES):
        best = int(np.argmax(capacity[:, res]))
        if capacity[best, res] < demand[res]:
            short.append(
                f"no allowed host has {demand[res]:g} {name} free at the forecast upper bound "
                f"(best: {inst.host_ids[hosts[best]]} with {capacity[best, res]:g})"
            )
    if short:
        return "; ".join(short)
    shortfall = np.maximum(demand - capacity, 0) / np.maximum(demand, 1e-9)
    closest = int(np.argmin(shortfall.sum(axis=1)))
    lacking = ", ".join(
        f"{RESOURCES[r]} by {demand[r] - capacity[closest, r]:g}"
        for r in np.flatnonzero(shortfall[closest] > 0)
    )
    return (
        f"no allowed host fits all its resources at once (closest: "
        f"{inst.host_ids[hosts[closest]]}, short of {lacking})"
    )


def _usable_hosts(inst: Instance) -> list[np.ndarray]:
    usable = eligible_candidates(inst, hysteresis=False, affinity=False)
    bounds = np.searchsorted(usable.shard, np.arange(inst.n_shards + 1))
    return [usable.host[bounds[s] : bounds[s + 1]] for s in range(inst.n_shards)]


def _dependency_conflicts(inst: Instance, usable: list[np.ndarray]) -> list[str]:
    out = []
    for a, b, limit in zip(inst.dep_a, inst.dep_b, inst.dep_limit, strict=True):
        ha, hb = usable[a], usable[b]
        if not len(ha) or not len(hb):
            continue
        pair = inst.latency[np.ix_(ha, hb)]
        i, j = np.unravel_index(int(np.argmin(pair)), pair.shape)
        if pair[i, j] <= limit:
            continue
        shards = f"shards {inst.shard_ids[a]},{inst.shard_ids[b]}: max_latency_ms {limit:g}"
        if np.isinf(pair[i, j]):
            out.append(f"{shards} but no pair of their usable hosts has a measured latency")
        else:
            out.append(
                f"{shards} but the closest pair of usable hosts is "
                f"{inst.host_ids[ha[i]]}-{inst.host_ids[hb[j]]} at {pair[i, j]:g} ms"
            )
    return out


def _group_conflicts(inst: Instance, usable: list[np.ndarray]) -> list[str]:
    out = []
    for group, name in enumerate(inst.affinity_names):
        members = np.flatnonzero(inst.affinity == group)
        common = set.intersection(*(set(inst.host_provider[usable[s]].tolist()) for s in members))
        if len(members) > 1 and not common:
            out.append(
                f"affinity group {name} (shards {names(inst.shard_ids, members)}): no provider "
                f"has a usable host for every member"
            )
    for group, name in enumerate(inst.anti_affinity_names):
        members = np.flatnonzero(inst.anti_affinity == group)
        hosts = np.unique(np.concatenate([usable[s] for s in members]))
        if len(members) > len(hosts):
            out.append(
                f"anti-affinity group {name}: {len(members)} shards "
                f"({names(inst.shard_ids, members)}) but only {len(hosts)} usable hosts "
                f"({names(inst.host_ids, hosts)})"
            )
    return out


def _with_elastic_capacity(inst: Instance, problem: MilpProblem) -> MilpProblem:
    """Adds one overflow variable per capacity row, costed per unit of capacity it exceeds."""
    assert problem.capacity_rows is not None
    rows = problem.capacity_rows.ravel()
    total_demand = np.maximum(inst.demand.sum(axis=0), 1e-9)
    scale = np.tile(total_demand, inst.n_hosts)  # overflow in [0, 1] covers any overcommit
    overflow = sparse.csc_matrix(
        (-scale, (rows, np.arange(len(rows)))), shape=(problem.matrix.shape[0], len(rows))
    )
    return replace(
        problem,
        cost=np.concatenate(
            [np.zeros(len(problem.cost)), scale / np.maximum(inst.capacity.ravel(), 1.0)]
        ),
        matrix=sparse.hstack([problem.matrix, overflow], format="csc"),
        integrality=np.concatenate([problem.integrality, np.zeros(len(rows), np.int32)]),
    )


def _solve_without(
    inst: Instance, dropped: frozenset[Family], time_limit_s: float
) -> tuple[MipOutcome, np.ndarray]:
    """Feasibility solve with `dropped` families relaxed; returns the outcome and host per shard.

    A dropped capacity family is made elastic (least overcommit) so the hosts it names are the
    ones that truly lack room; a dropped budget is replaced by minimizing the number of moves.
    """
    cands = eligible_candidates(
        inst,
        capacity=Family.CAPACITY not in dropped,
        hysteresis=Family.HYSTERESIS not in dropped,
        affinity=Family.AFFINITY not in dropped,
    )
    everything = np.ones(len(cands), dtype=bool)
    kept = ALL_FAMILIES - dropped
    problem = build_problem(inst, cands, everything, kept | {Family.CAPACITY})
    n_x = problem.n_x
    if Family.CAPACITY in dropped:
        problem = _with_elastic_capacity(inst, problem)
    else:
        problem = replace(problem, cost=np.zeros(len(problem.cost)))
    if Family.BUDGET in dropped:
        cost = problem.cost.copy()
        cost[:n_x] += cands.is_move.astype(float) * (
            1.0 if Family.CAPACITY not in dropped else 1e-6
        )
        problem = replace(problem, cost=cost)
    began = perf_counter()
    if solve_lp(problem, time_limit_s).infeasible:
        return MipOutcome(False, False, True, None, None, None), np.full(inst.n_shards, NO_INDEX)
    remaining = time_limit_s - (perf_counter() - began)
    outcome = solve_mip(problem, remaining, mip_rel_gap=0.0)
    host_of = np.full(inst.n_shards, NO_INDEX, dtype=np.int64)
    if outcome.values is not None:
        chosen = problem.columns[outcome.values[:n_x] > 0.5]
        host_of[cands.shard[chosen]] = cands.host[chosen]
    return outcome, host_of


def _must_move(inst: Instance) -> str:
    state = eligible_candidates(inst, hysteresis=False).state
    blocked = np.flatnonzero((state == CurrentHost.BLOCKED) | (state == CurrentHost.GONE))
    overloaded = np.flatnonzero(overloaded_hosts(inst))
    parts = []
    if len(blocked):
        parts.append(
            f"shards whose current host is gone or blocked: {names(inst.shard_ids, blocked)}"
        )
    if len(overloaded):
        parts.append(f"hosts over capacity now: {names(inst.host_ids, overloaded)}")
    return "; ".join(parts)


def _describe(inst: Instance, family: Family, host_of: np.ndarray) -> str:
    if family == Family.BUDGET:
        moves = int((inst.has_current & (host_of != inst.current)).sum())
        need = _must_move(inst)
        return (
            f"budget: at least {moves} moves are needed but max_moves is {inst.budget.max_moves}"
            + (f" ({need})" if need else "")
        )
    found = [v.message for v in violations_of(inst, host_of) if v.family == family.value]
    prefix = {
        Family.CAPACITY: "capacity at the forecast upper bound: the least overcommitted assignment",
        Family.LATENCY: "latency: every otherwise feasible assignment breaks a limit, e.g.",
        Family.AFFINITY: "affinity: every otherwise feasible assignment splits a group, e.g.",
        Family.HYSTERESIS: "hysteresis: a feasible assignment needs moves it forbids:",
    }[family]
    return (
        f"{prefix} {'; '.join(found[:5])}"
        if found
        else f"{family.value}: dropping it restores feasibility"
    )


def _sky_short(inst: Instance) -> list[str]:
    need, have = inst.demand.sum(axis=0), inst.capacity.sum(axis=0)
    return [
        f"capacity: the shards need {need[r]:g} {name} at the forecast upper bound but all "
        f"hosts together have {have[r]:g}"
        for r, name in enumerate(RESOURCES)
        if need[r] > have[r] + 1e-9
    ]


def quick_conflicts(inst: Instance) -> tuple[str, ...]:
    """Conflicts that cheap checks prove (each alone makes the problem infeasible)."""
    local = _shard_conflicts(inst) + _sky_short(inst)
    if local:
        return tuple(local)
    usable = _usable_hosts(inst)
    return tuple(_dependency_conflicts(inst, usable) + _group_conflicts(inst, usable))


def explain_infeasibility(inst: Instance, time_limit_s: float) -> tuple[str, ...]:
    local = quick_conflicts(inst)
    if local:
        return local
    deadline = perf_counter() + time_limit_s
    combos = [c for size in (1, 2) for c in itertools.combinations(FAMILY_ORDER, size)]
    undecided: list[tuple[Family, ...]] = []
    for size in (1, 2):
        found = []
        for combo in itertools.combinations(FAMILY_ORDER, size):
            left = deadline - perf_counter()
            if left <= 0:
                undecided.append(combo)
                continue
            share = left / (
                len(FAMILY_ORDER) - FAMILY_ORDER.index(combo[0])
                if size == 1
                else len(combos) - combos.index(combo)
            )
            outcome, host_of = _solve_without(inst, frozenset(combo), share)
            if outcome.feasible:
                found.append((combo, host_of))
            elif not outcome.infeasible:
                undecided.append(combo)
        if found and size == 1:
            return tuple(_describe(inst, combo[0], host_of) for combo, host_of in found)
        if found:
            return tuple(
                f"only dropping {' and '.join(f.value for f in combo)} together restores "
                "feasibility: " + " | ".join(_describe(inst, f, host_of) for f in combo)
                for combo, host_of in found
            )
        if undecided and size == 1:
            break  # pairs would only be reached if every single family was ruled out
    if undecided:
        return (
            "the time budget ran out before finding which constraints conflict; undecided: "
            + ", ".join("dropping " + " and ".join(f.value for f in c) for c in undecided),
        )
    return ("infeasible even with any two constraint families dropped",)
