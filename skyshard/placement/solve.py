"""Solves the placement MILP with HiGHS: top-K candidates, priced against the LP, then the MIP.

Pruning to the K cheapest candidates per shard (plus staying put) keeps 10,000 x 200 small,
but on its own could cut off the optimum when capacity binds. So the LP relaxation of the
pruned problem is solved first and every left-out candidate is priced with its duals
(column generation): reduced cost = cost - assignment dual - demand . capacity duals
- affinity dual. Rows left out of that sum (anti-affinity, latency, budget) are <= rows with
+1 entries and duals <= 0, so the sum is a lower bound on the true reduced cost. Candidates
with a negative lower bound are added and the LP solved again; when none is left, the LP
bound of the pruned problem equals that of the full problem. Pricing stops early once the
Lagrangian bound from the same duals (a valid lower bound on the full LP) is within
BOUND_TOLERANCE of the pruned LP: the last rounds add a handful of columns and move nothing.
The reported LP bound is that Lagrangian bound, so the gap is honest for the full problem. If
the pruned problem is infeasible, K grows fourfold (10, 40, 160, then no pruning) and
infeasibility is only declared for the unpruned problem.

The LP-guided heuristic (heuristic.py) then builds a feasible assignment; if it is within
`mip_rel_gap` of the LP bound it is the answer, otherwise it seeds the HiGHS MIP, which stops
as soon as its incumbent is within `mip_rel_gap` of its bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter

import numpy as np

from skyshard.placement.candidates import (
    Candidates,
    CurrentHost,
    eligible_candidates,
    top_k_mask,
)
from skyshard.placement.explain import explain_infeasibility, quick_conflicts
from skyshard.placement.heuristic import lp_guided_assignment
from skyshard.placement.highs import SOLVER_NAME, LpOutcome, MipOutcome, solve_lp, solve_mip
from skyshard.placement.instance import Instance, build_instance
from skyshard.placement.model import Move, PlacementInput, PlacementResult, Status
from skyshard.placement.problem import MilpProblem, build_problem

PRICING_TOLERANCE = 1e-7
BOUND_TOLERANCE = 1e-4  # relative; pricing stops when the full-LP bound is this close
MAX_TOP_K = 64
HEURISTIC_TIME_SHARE = 0.3
MIN_EXPLAIN_SECONDS = 10.0  # an infeasible answer gets this long to say why, even past the limit


@dataclass(frozen=True)
class SolveOptions:
    """`mip_rel_gap`: stop once the assignment is within this relative gap of the bound."""

    time_limit_s: float = 60.0
    mip_rel_gap: float = 0.005
    top_k: int | None = 10


def _signed_duals(problem: MilpProblem, row_dual: np.ndarray) -> np.ndarray:
    """Duals with the sign their row's bounds allow (guards against solver noise)."""
    dual = np.where(np.isinf(problem.row_lower), np.minimum(row_dual, 0.0), row_dual)
    return np.where(np.isinf(problem.row_upper), np.maximum(dual, 0.0), dual)


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


def _lagrangian_bound(
    inst: Instance, cands: Candidates, problem: MilpProblem, dual: np.ndarray, active: np.ndarray
) -> float:
    """A lower bound on the full (unpruned) LP from the pruned LP's duals.

    Every row but the assignment rows is priced out with its dual; each shard then takes its
    cheapest candidate at those prices. Rows a left-out candidate would join are priced at 0
    (or, for <= rows, ignored), which only lowers the bound, so it stays valid.
    """
    is_assignment = np.zeros(len(dual), dtype=bool)
    is_assignment[problem.assignment_rows] = True
    rhs = np.where(dual < 0, problem.row_upper, np.where(dual > 0, problem.row_lower, 0.0))
    rows_term = float((dual * rhs)[~is_assignment].sum())
    reduced = problem.cost - problem.matrix.T @ dual
    assignment_dual = dual[problem.assignment_rows]
    price = np.empty(len(cands))
    cols = problem.columns
    price[cols] = reduced[: problem.n_x] + assignment_dual[cands.shard[cols]]
    left_out = np.flatnonzero(~active)
    price[left_out] = (
        _reduced_cost_bounds(inst, cands, problem, dual, left_out)
        + assignment_dual[cands.shard[left_out]]
    )
    cheapest = np.full(inst.n_shards, np.inf)
    np.minimum.at(cheapest, cands.shard, price)
    return rows_term + float(cheapest.sum()) + float(np.minimum(reduced[problem.n_x :], 0).sum())


class _Timer:
    def __init__(self) -> None:
        self.build = 0.0
        self.solve = 0.0
        self.start = perf_counter()
        self.phases: dict[str, float] = {}

    def remaining(self, limit: float) -> float:
        return limit - (perf_counter() - self.start)

    def add(self, phase: str, began: float) -> None:
        elapsed = perf_counter() - began
        self.phases[phase] = self.phases.get(phase, 0.0) + elapsed
        self.solve += elapsed


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


@dataclass(frozen=True)
class _Incumbent:
    chosen: np.ndarray  # candidate indices, one per shard
    objective: float
    proven: bool  # the solver proved it within mip_rel_gap of its own bound
    dual_bound: float | None  # the MIP's bound, valid for the problem it solved


def _result(
    inp: PlacementInput,
    inst: Instance,
    cands: Candidates,
    best: _Incumbent,
    lp_bound: float | None,
    complete: bool,
    options: SolveOptions,
    timer: _Timer,
    stats: dict[str, int],
) -> PlacementResult:
    chosen = np.sort(best.chosen)
    assignment = {
        inst.shard_ids[s]: inst.host_ids[h]
        for s, h in zip(cands.shard[chosen], cands.host[chosen], strict=True)
    }
    bounds = [b for b in (lp_bound, best.dual_bound if complete else None) if b is not None]
    best_bound = max(bounds) if bounds else None
    gap = None
    if best_bound is not None:
        gap = max(0.0, best.objective - best_bound) / max(abs(best.objective), 1e-9)
    within = gap is not None and gap <= options.mip_rel_gap + 1e-9
    stats |= {f"{phase}_ms": round(1000 * s) for phase, s in timer.phases.items()}
    return PlacementResult(
        status=Status.OPTIMAL if within else Status.FEASIBLE_WITH_GAP,
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


def _start_values(problem: MilpProblem, chosen_column: np.ndarray) -> np.ndarray:
    """A full MIP solution vector for chosen problem columns, with the affinity y filled in."""
    values = np.zeros(len(problem.cost))
    values[chosen_column] = 1.0
    row_sums = problem.matrix[:, : problem.n_x] @ values[: problem.n_x]
    matrix = problem.matrix
    for y in range(problem.n_x, len(problem.cost)):
        rows = matrix.indices[matrix.indptr[y] : matrix.indptr[y + 1]]
        values[y] = row_sums[rows[0]] if len(rows) else 0.0
    return values


def _mip(
    problem: MilpProblem,
    cands: Candidates,
    start: np.ndarray | None,
    time_limit_s: float,
    gap: float,
) -> tuple[_Incumbent | None, MipOutcome]:
    start_values = None
    if start is not None:
        start_values = _start_values(problem, np.searchsorted(problem.columns, start))
    mip = solve_mip(problem, time_limit_s, gap, start=start_values)
    if not mip.feasible:
        return None, mip
    assert mip.values is not None and mip.objective is not None
    chosen = problem.columns[mip.values[: problem.n_x] > 0.5]
    return _Incumbent(chosen, float(cands.cost[chosen].sum()), mip.proven, mip.dual_bound), mip


def _price(
    inst: Instance,
    cands: Candidates,
    active: np.ndarray,
    k: int | None,
    options: SolveOptions,
    timer: _Timer,
    stats: dict[str, int],
) -> tuple[MilpProblem, np.ndarray, int | None, LpOutcome, float | None]:
    """LP with column pricing: (problem, active, k, last LP, bound on the full LP or None)."""
    while True:
        problem = build_problem(inst, cands, active)
        began = perf_counter()
        lp = solve_lp(problem, timer.remaining(options.time_limit_s))
        timer.add("lp", began)
        if lp.infeasible and not active.all():
            k = _widen(k)
            active = active | top_k_mask(inst, cands, k)
            continue
        if not lp.optimal:
            return problem, active, k, lp, None
        assert lp.row_dual is not None and lp.objective is not None
        dual = _signed_duals(problem, lp.row_dual)
        left_out = np.flatnonzero(~active)
        bounds = _reduced_cost_bounds(inst, cands, problem, dual, left_out)
        tolerance = PRICING_TOLERANCE * np.maximum(1.0, np.abs(cands.cost[left_out]))
        priced_in = left_out[bounds < -tolerance]
        if not len(priced_in):
            return problem, active, k, lp, lp.objective
        bound = _lagrangian_bound(inst, cands, problem, dual, active)
        if lp.objective - bound <= BOUND_TOLERANCE * max(abs(lp.objective), 1.0):
            return problem, active, k, lp, bound
        active = active.copy()
        active[priced_in] = True
        stats["pricing_rounds"] += 1


def solve_placement(inp: PlacementInput, options: SolveOptions | None = None) -> PlacementResult:
    """Minimum-cost assignment of every shard to one host under all constraint families."""
    options = options or SolveOptions()
    timer = _Timer()
    inst = build_instance(inp)
    cands = eligible_candidates(inst)
    k = options.top_k
    active = top_k_mask(inst, cands, k)
    timer.build += perf_counter() - timer.start
    stats = {"candidates": len(inst.cand_cost), "eligible": len(cands), "pricing_rounds": 0}

    # A cheap local conflict, or an infeasible LP relaxation, already settles the answer.
    best: _Incumbent | None = None
    problem: MilpProblem | None = None
    lp_bound = None
    conflicts = quick_conflicts(inst)
    infeasible = bool(conflicts)
    if not infeasible:
        # A feasible assignment found without the LP puts its columns in the pruned problem,
        # so the pruned LP is feasible and K need not widen (each widening is slow at scale).
        began = perf_counter()
        remaining = timer.remaining(options.time_limit_s)
        seed = lp_guided_assignment(inst, cands, np.zeros(len(cands)), remaining * 0.1)
        timer.add("heuristic", began)
        if seed is not None:
            best = _Incumbent(seed, float(cands.cost[seed].sum()), False, None)
            active[seed] = True
        problem, active, k, lp, lp_bound = _price(inst, cands, active, k, options, timer, stats)
        infeasible = lp.infeasible
    if not infeasible and lp.optimal:
        assert lp.values is not None
        lp_x = np.zeros(len(cands))
        lp_x[problem.columns] = lp.values[: problem.n_x]
        began = perf_counter()
        remaining = timer.remaining(options.time_limit_s)
        chosen = lp_guided_assignment(inst, cands, lp_x, remaining * HEURISTIC_TIME_SHARE)
        timer.add("heuristic", began)
        if chosen is not None and (best is None or cands.cost[chosen].sum() < best.objective):
            best = _Incumbent(chosen, float(cands.cost[chosen].sum()), False, None)
    stats["heuristic_found"] = int(best is not None)
    within_gap = (
        best is not None
        and lp_bound is not None
        and best.objective - lp_bound <= options.mip_rel_gap * abs(best.objective)
    )
    mip: MipOutcome | None = None
    while problem is not None and not infeasible and not within_gap:
        if best is not None and not active[best.chosen].all():
            active = active.copy()
            active[best.chosen] = True
            began = perf_counter()
            problem = build_problem(inst, cands, active)
            timer.build += perf_counter() - began
        began = perf_counter()
        found, mip = _mip(
            problem,
            cands,
            None if best is None else best.chosen,
            timer.remaining(options.time_limit_s),
            options.mip_rel_gap,
        )
        timer.add("mip", began)
        if mip.infeasible and not active.all():
            k = _widen(k)
            active = active | top_k_mask(inst, cands, k)
            began = perf_counter()
            problem = build_problem(inst, cands, active)
            timer.build += perf_counter() - began
            continue
        if found is not None and (best is None or found.objective <= best.objective + 1e-9):
            best = found
        infeasible = mip.infeasible and best is None
        break

    if problem is not None:
        stats |= {"columns": problem.n_x, "rows": problem.matrix.shape[0]}
    if best is not None:
        complete = bool(active.all()) and best.dual_bound is not None
        return _result(inp, inst, cands, best, lp_bound, complete, options, timer, stats)
    if infeasible:
        status = Status.INFEASIBLE
        began = perf_counter()
        explanation = conflicts or explain_infeasibility(
            inst, max(timer.remaining(options.time_limit_s), MIN_EXPLAIN_SECONDS)
        )
        timer.add("explain", began)
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
