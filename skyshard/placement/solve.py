"""Solves the placement MILP with HiGHS: top-K candidates, priced against the LP, then the MIP.

Pruning to the K cheapest candidates per shard (plus staying put) keeps 10,000 x 200 small,
but on its own could cut off the optimum when capacity binds. So the LP relaxation of the
pruned problem is solved first and every left-out candidate is priced with its duals
(column generation): reduced cost = cost - assignment dual - demand . capacity duals
- affinity dual. Rows left out of that sum (anti-affinity, latency, budget) are <= rows with
+1 entries and duals <= 0, so the sum is a lower bound on the true reduced cost. Candidates
with a negative lower bound are added and the LP solved again; when none is left, the LP
bound of the pruned problem equals that of the full problem, so the reported gap is honest
for the full problem. If the pruned problem is infeasible, K grows fourfold (10, 40, 160,
then no pruning) and infeasibility is only declared for the unpruned problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from time import perf_counter

import numpy as np

from skyshard.placement.candidates import (
    Candidates,
    CurrentHost,
    eligible_candidates,
    top_k_mask,
)
from skyshard.placement.explain import explain_infeasibility
from skyshard.placement.highs import SOLVER_NAME, MipOutcome, solve_lp, solve_mip
from skyshard.placement.instance import Instance, build_instance
from skyshard.placement.model import Move, PlacementInput, PlacementResult, Status
from skyshard.placement.problem import MilpProblem, build_problem

PRICING_TOLERANCE = 1e-7
DIVE_FIX_TOLERANCE = 1e-6
MAX_TOP_K = 64
DIVE_TIME_SHARE = 0.25


@dataclass(frozen=True)
class SolveOptions:
    time_limit_s: float = 60.0
    mip_rel_gap: float = 0.005
    top_k: int | None = 10


def _reduced_cost_bounds(
    inst: Instance, cands: Candidates, problem: MilpProblem, row_dual: np.ndarray, which: np.ndarray
) -> np.ndarray:
    shard, host = cands.shard[which], cands.host[which]
    bound = cands.cost[which] - row_dual[problem.assignment_rows[shard]]
    if problem.capacity_rows is not None:
        bound -= (inst.demand[shard] * row_dual[problem.capacity_rows[host]]).sum(axis=1)
    if problem.affinity_rows is not None:
        row = problem.affinity_rows[shard, inst.host_provider[host]]
        bound -= np.where(row >= 0, row_dual[np.maximum(row, 0)], 0.0)
    return bound


class _Timer:
    def __init__(self) -> None:
        self.build = 0.0
        self.solve = 0.0
        self.start = perf_counter()

    def remaining(self, limit: float) -> float:
        return limit - (perf_counter() - self.start)


def moves_for(
    inp: PlacementInput, inst: Instance, cands: Candidates, chosen: np.ndarray
) -> tuple[Move, ...]:
    """The moves in a solution given as chosen candidate indices."""
    current_by_id = {s.shard_id: s.current_host for s in inp.shards}
    moves = []
    for col in chosen[cands.is_move[chosen]]:
        shard, host = int(cands.shard[col]), int(cands.host[col])
        stay_row = (
            inst.candidate_row(shard, int(inst.current[shard]))
            if inst.current[shard] >= 0
            else None
        )
        new_terms = inst.term_values[cands.row[col]]
        state = CurrentHost(int(cands.state[shard]))
        if state == CurrentHost.BLOCKED:
            blocked_by = inst.cand_blocked_by[stay_row] if stay_row is not None else "not scored"
            reason = f"blocked: {blocked_by or 'not allowed'}"
        else:
            reason = {
                CurrentHost.GONE: "host_gone",
                CurrentHost.OVERLOADED: "overloaded",
                CurrentHost.CONFLICTED: "constraint",
            }.get(state, "saving")
        terms: Mapping[str, float] | None = None
        saving = None
        if stay_row is not None:
            delta = inst.term_values[stay_row] - new_terms
            terms = dict(zip(inst.term_names, delta.tolist(), strict=True))
            saving = float(delta.sum())
        moves.append(
            Move(
                shard_id=inst.shard_ids[shard],
                from_host=current_by_id[inst.shard_ids[shard]] or "",
                to_host=inst.host_ids[host],
                saving=saving,
                terms=terms,
                reason=reason,
            )
        )
    return tuple(moves)


def _result(
    inp: PlacementInput,
    inst: Instance,
    cands: Candidates,
    problem: MilpProblem,
    mip: MipOutcome,
    lp_bound: float | None,
    complete: bool,
    options: SolveOptions,
    timer: _Timer,
    stats: dict[str, int],
) -> PlacementResult:
    assert mip.values is not None and mip.objective is not None
    chosen = problem.columns[mip.values[: problem.n_x] > 0.5]
    assignment = {
        inst.shard_ids[s]: inst.host_ids[h]
        for s, h in zip(cands.shard[chosen], cands.host[chosen], strict=True)
    }
    bounds = [b for b in (lp_bound, mip.dual_bound if complete else None) if b is not None]
    best_bound = max(bounds) if bounds else None
    gap = None
    if best_bound is not None:
        gap = max(0.0, mip.objective - best_bound) / max(abs(mip.objective), 1e-9)
    optimal = mip.proven and gap is not None and gap <= options.mip_rel_gap + 1e-9
    return PlacementResult(
        status=Status.OPTIMAL if optimal else Status.FEASIBLE_WITH_GAP,
        assignment=assignment,
        objective=float(cands.cost[chosen].sum()),
        lp_bound=lp_bound,
        best_bound=best_bound,
        gap=gap,
        build_seconds=timer.build,
        solve_seconds=timer.solve,
        solver=SOLVER_NAME,
        moves=moves_for(inp, inst, cands, chosen),
        stats=stats,
    )


def _widen(k: int | None) -> int | None:
    """Next K after the pruned problem proved infeasible; None (no pruning) in the end."""
    return None if k is None or k >= MAX_TOP_K else k * 4


def _solve_mip_from_lp(
    problem: MilpProblem,
    lp_values: np.ndarray | None,
    lp_bound: float | None,
    options: SolveOptions,
    timer: _Timer,
) -> MipOutcome:
    """The MIP, started from a dive: fix every x the LP sets to 1 and solve the small rest.

    Most of an assignment LP is integral, so the dive is quick; if it is already within the
    gap of the LP bound it is the answer, otherwise it seeds HiGHS with a good incumbent.
    """
    start = None
    if lp_values is not None and lp_bound is not None:
        fixed = np.zeros(len(problem.cost), dtype=bool)
        fixed[: problem.n_x] = lp_values[: problem.n_x] > 1 - DIVE_FIX_TOLERANCE
        dive_limit = timer.remaining(options.time_limit_s) * DIVE_TIME_SHARE
        dive = solve_mip(problem, dive_limit, options.mip_rel_gap, fixed=fixed)
        if dive.feasible and dive.objective is not None:
            gap = (dive.objective - lp_bound) / max(abs(dive.objective), 1e-9)
            if gap <= options.mip_rel_gap:
                return replace(dive, proven=True, dual_bound=lp_bound)
            start = dive.values
    return solve_mip(
        problem, timer.remaining(options.time_limit_s), options.mip_rel_gap, start=start
    )


def solve_placement(inp: PlacementInput, options: SolveOptions | None = None) -> PlacementResult:
    """Minimum-cost assignment of every shard to one host under all constraint families."""
    options = options or SolveOptions()
    timer = _Timer()
    inst = build_instance(inp)
    cands = eligible_candidates(inst)
    k = options.top_k
    active = top_k_mask(inst, cands, k)
    problem = build_problem(inst, cands, active)
    timer.build += perf_counter() - timer.start
    stats = {"candidates": len(inst.cand_cost), "eligible": len(cands), "pricing_rounds": 0}

    lp_bound, lp_values = None, None
    # A shard without candidates, or an infeasible LP relaxation, already settles the answer.
    settled = np.bincount(cands.shard, minlength=inst.n_shards) == 0
    while not settled.any():
        began = perf_counter()
        lp = solve_lp(problem, timer.remaining(options.time_limit_s))
        timer.solve += perf_counter() - began
        if lp.infeasible and active.all():
            settled[:] = True
            break
        began = perf_counter()
        if lp.infeasible:
            k = _widen(k)
            active |= top_k_mask(inst, cands, k)
        elif lp.optimal:
            assert lp.row_dual is not None
            left_out = np.flatnonzero(~active)
            bounds = _reduced_cost_bounds(inst, cands, problem, lp.row_dual, left_out)
            priced_in = left_out[
                bounds < -PRICING_TOLERANCE * np.maximum(1.0, np.abs(cands.cost[left_out]))
            ]
            if not len(priced_in):
                lp_bound, lp_values = lp.objective, lp.values
                break
            active[priced_in] = True
            stats["pricing_rounds"] += 1
        else:
            break  # time limit: solve the MIP on what we have, without a proven bound
        problem = build_problem(inst, cands, active)
        timer.build += perf_counter() - began

    while not settled.any():
        began = perf_counter()
        mip = _solve_mip_from_lp(problem, lp_values, lp_bound, options, timer)
        timer.solve += perf_counter() - began
        if mip.infeasible and not active.all():
            began = perf_counter()
            k = _widen(k)
            active |= top_k_mask(inst, cands, k)
            problem = build_problem(inst, cands, active)
            lp_values = None  # belongs to the smaller problem
            timer.build += perf_counter() - began
            continue
        break

    stats |= {
        "columns": problem.n_x,
        "rows": problem.matrix.shape[0],
        "nonzeros": problem.matrix.nnz,
    }
    if settled.any():
        mip = MipOutcome(False, False, True, None, None, None)
    if mip.feasible:
        return _result(
            inp, inst, cands, problem, mip, lp_bound, bool(active.all()), options, timer, stats
        )
    if mip.infeasible:
        status = Status.INFEASIBLE
        explanation = explain_infeasibility(inst, timer.remaining(options.time_limit_s))
    else:
        status = Status.NO_SOLUTION
        explanation = (
            f"time limit {options.time_limit_s:g} s reached before a feasible assignment was found",
        )
    return PlacementResult(
        status=status,
        assignment={},
        objective=None,
        lp_bound=lp_bound,
        best_bound=lp_bound,
        gap=None,
        build_seconds=timer.build,
        solve_seconds=timer.solve,
        solver=SOLVER_NAME,
        explanation=explanation,
        stats=stats,
    )
