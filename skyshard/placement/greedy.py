"""Baseline: per-shard cheapest fit, largest shards first, for comparison with the MILP."""

from __future__ import annotations

from time import perf_counter

import numpy as np

from skyshard.placement.candidates import eligible_candidates
from skyshard.placement.check import violations_of
from skyshard.placement.constraints.base import Trackers
from skyshard.placement.instance import NO_INDEX, build_instance
from skyshard.placement.model import PlacementInput, PlacementResult, Status
from skyshard.placement.solve import moves_for


def greedy_placement(inp: PlacementInput, *, respect_capacity: bool = True) -> PlacementResult:
    """Each shard, largest first, takes its cheapest candidate with room left.

    It honours policy, hysteresis and the families marked `in_greedy` (capacity, GPU devices,
    anti-affinity, max shards per host; the capacity-like ones unless told not to), but not
    latency, affinity or max_moves; what it breaks is listed in `unfixed`. Shards with no room
    anywhere stay unplaced. With `respect_capacity=False` it is the capacity-blind per-shard
    cheapest choice.
    """
    began = perf_counter()
    inst = build_instance(inp)
    cands = eligible_candidates(inst, capacity=respect_capacity, prune=False)
    kept = Trackers(
        [
            family
            for family in inst.constraints
            if family.in_greedy and (respect_capacity or not family.capacity_like)
        ],
        inst,
        cands,
    )
    bounds = np.searchsorted(cands.shard, np.arange(inst.n_shards + 1))
    size = (inst.demand / np.maximum(inst.capacity.mean(axis=0), 1e-9)).max(axis=1)
    chosen = []
    for shard in np.lexsort((np.arange(inst.n_shards), -size)):
        lo, hi = bounds[shard], bounds[shard + 1]
        cols = lo + np.lexsort((cands.host[lo:hi], cands.cost[lo:hi]))
        ok = kept.fits(int(shard), cols, cands.host[cols])
        if ok.any():
            col = int(cols[np.argmax(ok)])
            kept.update(int(shard), col, int(cands.host[col]), +1)
            chosen.append(col)
    chosen_cols = np.array(sorted(chosen), dtype=np.int64)
    host_of = np.full(inst.n_shards, NO_INDEX, dtype=np.int64)
    host_of[cands.shard[chosen_cols]] = cands.host[chosen_cols]
    broken = violations_of(inst, host_of)
    elapsed = perf_counter() - began
    return PlacementResult(
        status=Status.PARTIAL if broken else Status.FEASIBLE_WITH_GAP,
        assignment={
            inst.shard_ids[s]: inst.host_ids[h] for s, h in enumerate(host_of) if h != NO_INDEX
        },
        objective=float(cands.cost[chosen_cols].sum()),
        lp_bound=None,
        best_bound=None,
        gap=None,
        build_seconds=0.0,
        solve_seconds=elapsed,
        solver="greedy cheapest fit",
        moves=moves_for(inp, inst, cands, chosen_cols),
        unfixed=tuple(f"{v.family}: {v.message}" for v in broken),
        stats={"unplaced": int((host_of == NO_INDEX).sum()), "violations": len(broken)},
    )
