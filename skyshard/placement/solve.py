"""Solves the elastic placement MILP with HiGHS: top-K candidates priced against the LP, an
LP-guided heuristic, then the MIP, all inside one wall-clock limit.

Pruning to the K cheapest candidates per shard (plus staying put) keeps 10,000 x 200 small,
but on its own could cut off the optimum when capacity binds. So the LP relaxation of the
pruned problem is solved first and every left-out candidate is priced with its duals
(column generation): reduced cost = cost - assignment dual - each priced family's dual term
(capacity: demand . capacity duals; affinity: the member row's dual). Rows left out of that
sum (devices, anti-affinity, latency, budget) are <= rows with non-negative entries on x and
duals <= 0, so the sum is a lower bound on the true reduced cost. Candidates
with a negative lower bound are added and the LP solved again; when none is left, the LP bound
of the pruned problem equals that of the full problem. Each round adds at most PRICED_PER_SHARD
columns per shard. Pricing stops early once the Lagrangian bound from the same duals (a valid
lower bound on the full LP) is within BOUND_TOLERANCE of the pruned LP, or when its share of
the time is spent; the reported LP bound is the best Lagrangian bound, so the gap is honest.

The problem is elastic (problem.py): staying put or going unplaced is always possible, so there
is always a plan. The first incumbent is the heuristic's without the LP; the LP-guided heuristic
then improves it; if the best is not within `mip_rel_gap` of the LP bound it seeds the HiGHS
MIP. Every phase gets what is left of `time_limit_s` (measured from the call, instance,
candidates and pre-checks included) minus a reserve for writing the answer. A phase that cannot
stop itself is skipped or shrunk when the time left is short (`_affordable`, the MIP's root
rule), HiGHS is interrupted at the deadline, and a large MIP runs in a worker process killed at
it, so the whole call ends within the limit plus a small overshoot; `PlacementResult.cut`
names what the limit cut.
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
from skyshard.placement.check import violations_of
from skyshard.placement.explain import pre_checks, unplaceable
from skyshard.placement.heuristic import lp_guided_assignment
from skyshard.placement.highs import SOLVER_NAME, MipOutcome, solve_lp, solve_mip
from skyshard.placement.instance import NO_INDEX, Instance, build_instance
from skyshard.placement.mip_worker import solve_mip_in_worker
from skyshard.placement.model import Move, PlacementInput, PlacementResult, Status
from skyshard.placement.problem import (
    MilpProblem,
    Penalties,
    build_problem,
    penalties,
    solution_vector,
)

PRICING_TOLERANCE = 1e-7
BOUND_TOLERANCE = 1e-4  # relative; pricing stops when the full-LP bound is this close
FIRST_HEURISTIC_SHARE = 0.1
HEURISTIC_TIME_SHARE = 0.3
PRICING_TIME_SHARE = 0.5
PRICED_PER_SHARD = 3
MIP_TIME_SHARE = 0.8
FINISH_SHARE = 0.05  # of the limit, kept for the checker, the moves and the answer
FINISH_BUILD_RATIO = 2.0  # or this times the instance build, if more
MILP_RATIO = 1.0  # the MILP path runs only with this times the time spent so far left
RICH_RATIO = 5.0  # below this times the time spent so far, fewer candidates per shard
MIN_TOP_K = 2
# the MIP runs only with this times the last LP's time left for it: before its first node
# HiGHS presolves, checks the start and solves the root LP without looking at its clock (at
# 6,000 hosts 20 s on a 15 s limit, the root LP not finished)
MIP_ROOT_RATIO = 2.0
# from an LP this slow on, the MIP runs in a worker process stopped at the deadline (see
# mip_worker); below, the overrun is small and starting a process is not
WORKER_LP_S = 1.0


@dataclass(frozen=True)
class SolveOptions:
    """`mip_rel_gap`: stop once the assignment is within this relative gap of the bound.
    `time_limit_s` holds for the whole call (build, pre-checks, solve, explanation)."""

    time_limit_s: float = 60.0
    mip_rel_gap: float = 0.005
    top_k: int | None = 10


def _signed_duals(problem: MilpProblem, row_dual: np.ndarray) -> np.ndarray:
    """Duals with the sign their row's bounds allow (guards against solver noise)."""
    dual = np.where(np.isinf(problem.row_lower), np.minimum(row_dual, 0.0), row_dual)
    return np.where(np.isinf(problem.row_upper), np.maximum(dual, 0.0), dual)


def _reduced_cost_bounds(
    inst: Instance,
    cands: Candidates,
    problem: MilpProblem,
    pen: Penalties,
    row_dual: np.ndarray,
    which: np.ndarray,
) -> np.ndarray:
    shard, host = cands.shard[which], cands.host[which]
    bound = cands.cost[which] + pen.blocked_stay * cands.blocked_stay[which]
    bound -= row_dual[problem.assignment_rows[shard]]
    for family, row_map in problem.priced:
        bound -= family.dual_term(inst, row_map, shard, host, row_dual)
    return bound


def _lagrangian_bound(
    inst: Instance,
    cands: Candidates,
    problem: MilpProblem,
    pen: Penalties,
    dual: np.ndarray,
    active: np.ndarray,
) -> float:
    """A lower bound on the full (unpruned) LP from the pruned LP's duals.

    Every row but the assignment rows is priced out with its dual; each shard then takes its
    cheapest candidate (or u) at those prices, every other column its cheapest bound. Rows a
    left-out candidate would join are priced at 0 (or, for <= rows, ignored), which only lowers
    the bound, so it stays valid.
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
        _reduced_cost_bounds(inst, cands, problem, pen, dual, left_out)
        + assignment_dual[cands.shard[left_out]]
    )
    cheapest = np.full(inst.n_shards, pen.unplaced)
    np.minimum.at(cheapest, cands.shard, price)
    others = slice(problem.first_helper, None)
    return (
        rows_term
        + float(cheapest.sum())
        + float((np.minimum(reduced[others], 0) * problem.upper[others]).sum())
    )


def _most_negative(
    shard: np.ndarray, bounds: np.ndarray, negative: np.ndarray, columns: np.ndarray
) -> np.ndarray:
    """Per shard, the PRICED_PER_SHARD columns with the most negative reduced-cost bound: adding
    every negative column at once makes the next LP several times slower for little gain."""
    which = np.flatnonzero(negative)
    order = which[np.lexsort((bounds[which], shard[which]))]
    first = np.searchsorted(shard[order], shard[order], side="left")
    rank = np.arange(len(order)) - first
    return columns[order[rank < PRICED_PER_SHARD]]


class _Timer:
    """One clock for the whole call: the time each phase took and what the limit cut short."""

    def __init__(self, limit: float) -> None:
        self.start = perf_counter()
        self.limit = limit
        self.reserve = FINISH_SHARE * limit
        self.phases: dict[str, float] = {}
        self.cut: list[str] = []

    def elapsed(self) -> float:
        return perf_counter() - self.start

    def remaining(self) -> float:
        """Seconds left for solving, the finishing reserve kept back."""
        return self.limit - self.reserve - (perf_counter() - self.start)

    def add(self, phase: str, began: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + perf_counter() - began


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
    chosen: np.ndarray  # (shards,) candidate index, NO_INDEX when unplaced
    objective: float  # elastic: cost plus penalties
    dual_bound: float | None  # the MIP's bound, valid for the problem it solved

    @property
    def placed(self) -> np.ndarray:
        return self.chosen[self.chosen != NO_INDEX]


class _Search:
    """The problem over the active candidates, rebuilt when an incumbent needs more columns."""

    def __init__(
        self, inst: Instance, cands: Candidates, pen: Penalties, active: np.ndarray, timer: _Timer
    ) -> None:
        self.inst, self.cands, self.pen, self.timer = inst, cands, pen, timer
        self.active = active
        self.problem = self._build()
        self.stats = {"pricing_rounds": 0}
        self.lp_seconds = 0.0  # the last LP's

    def _build(self) -> MilpProblem:
        began = perf_counter()
        problem = build_problem(self.inst, self.cands, self.active, self.pen)
        self.timer.add("problem", began)
        return problem

    def include(self, chosen: np.ndarray) -> None:
        placed = chosen[chosen != NO_INDEX]
        if not self.active[placed].all():
            self.active = self.active.copy()
            self.active[placed] = True
            self.problem = self._build()

    def vector(self, chosen: np.ndarray) -> np.ndarray:
        self.include(chosen)
        placed = chosen[chosen != NO_INDEX]
        return solution_vector(self.problem, np.searchsorted(self.problem.columns, placed))

    def incumbent(self, chosen: np.ndarray) -> _Incumbent:
        vector = self.vector(chosen)
        return _Incumbent(chosen, float(self.problem.cost @ vector), None)

    def price(self, time_share: float) -> tuple[np.ndarray | None, float | None]:
        """LP with column pricing: (LP x per candidate, bound on the full LP), or (None, None)
        when time ran out before any LP. The first LP may use all the time left; pricing rounds
        after it get `time_share` of it. When that runs out (or a round's LP is stopped) the
        last LP guides the heuristic and the best Lagrangian bound so far (valid for the full
        problem) is the bound."""
        inst, cands, pen = self.inst, self.cands, self.pen
        deadline = perf_counter() + max(self.timer.remaining(), 0.0) * time_share
        best_bound = -np.inf
        last: tuple[np.ndarray | None, float | None] = (None, None)
        while True:
            began = perf_counter()
            first = last[0] is None
            lp = solve_lp(self.problem, self.timer.remaining() if first else deadline - began)
            self.timer.add("lp", began)
            self.lp_seconds = perf_counter() - began
            if not lp.optimal:
                if last[0] is not None:
                    self.timer.cut.append(
                        "LP pricing: a round's LP stopped at the time share; the previous LP "
                        "guides the heuristic and the bound is the Lagrangian one"
                    )
                return last
            assert lp.row_dual is not None and lp.objective is not None and lp.values is not None
            lp_x = np.zeros(len(cands))
            lp_x[self.problem.columns] = lp.values[: self.problem.n_x]
            dual = _signed_duals(self.problem, lp.row_dual)
            left_out = np.flatnonzero(~self.active)
            bounds = _reduced_cost_bounds(inst, cands, self.problem, pen, dual, left_out)
            tolerance = PRICING_TOLERANCE * np.maximum(1.0, np.abs(cands.cost[left_out]))
            negative = bounds < -tolerance
            if not negative.any():
                return lp_x, lp.objective
            bound = _lagrangian_bound(inst, cands, self.problem, pen, dual, self.active)
            best_bound = max(best_bound, bound)
            close = lp.objective - best_bound <= BOUND_TOLERANCE * max(abs(lp.objective), 1.0)
            if close:
                return lp_x, best_bound
            if perf_counter() >= deadline:
                self.timer.cut.append(
                    "LP pricing: stopped at its time share with candidates left to price; "
                    "the bound is the Lagrangian one"
                )
                return lp_x, best_bound
            last = (lp_x, best_bound)
            self.active = self.active.copy()
            self.active[_most_negative(cands.shard[left_out], bounds, negative, left_out)] = True
            self.problem = self._build()
            self.stats["pricing_rounds"] += 1

    def mip(
        self, start: _Incumbent, gap: float, limit: float
    ) -> tuple[_Incumbent | None, MipOutcome | None]:
        """The MIP from `start` with HiGHS's own `limit`; (None, None) when its worker process
        was stopped at the end of the solving time without an answer."""
        began = perf_counter()
        start_values = self.vector(start.chosen)
        mip: MipOutcome | None
        if self.lp_seconds >= WORKER_LP_S:
            mip = solve_mip_in_worker(
                self.problem, limit, gap, start=start_values, kill_after_s=self.timer.remaining()
            )
        else:
            mip = solve_mip(self.problem, limit, gap, start=start_values)
        self.timer.add("mip", began)
        if mip is None or not mip.feasible:
            return None, mip
        assert mip.values is not None and mip.objective is not None
        x = mip.values[: self.problem.n_x] > 0.5
        chosen = np.full(self.inst.n_shards, NO_INDEX, dtype=np.int64)
        cols = self.problem.columns[x]
        chosen[self.cands.shard[cols]] = cols
        return _Incumbent(chosen, float(mip.objective), mip.dual_bound), mip


BUILD_PHASES = ("instance", "candidates", "problem")


def _result(
    inp: PlacementInput,
    inst: Instance,
    cands: Candidates,
    best: _Incumbent,
    lp_bound: float | None,
    bound: float | None,
    explanation: tuple[str, ...],
    why: dict[int, str],
    options: SolveOptions,
    timer: _Timer,
    search: _Search,
) -> PlacementResult:
    """`why`: the pre-checks' reasons for shards no allowed host can hold."""
    began = perf_counter()
    placed = np.sort(best.placed)
    host_of = np.full(inst.n_shards, NO_INDEX, dtype=np.int64)
    host_of[cands.shard[placed]] = cands.host[placed]
    gap = None
    if bound is not None:
        gap = max(0.0, best.objective - bound) / max(abs(best.objective), 1e-9)
    unfixed = tuple(f"{v.family}: {v.message}" for v in violations_of(inst, host_of))
    moves = moves_for(inp, inst, cands, placed)
    cost = float(cands.cost[placed].sum())
    if unfixed:
        status = Status.PARTIAL
    elif gap is not None and gap <= options.mip_rel_gap + 1e-9:
        status = Status.OPTIMAL
    else:
        status = Status.FEASIBLE_WITH_GAP
    timer.add("explanation", began)
    stats = {
        "candidates": len(inst.cand_cost),
        "eligible": len(cands),
        "columns": search.problem.n_x,
        "rows": search.problem.matrix.shape[0],
        **search.stats,
        **{f"{phase}_ms": round(1000 * s) for phase, s in timer.phases.items()},
    }
    build_seconds = sum(timer.phases.get(phase, 0.0) for phase in BUILD_PHASES)
    limit = f"time limit {options.time_limit_s:g} s"
    return PlacementResult(
        status=status,
        assignment={inst.shard_ids[s]: inst.host_ids[h] for s, h in enumerate(host_of) if h >= 0},
        objective=best.objective,
        lp_bound=lp_bound,
        best_bound=bound,
        gap=gap,
        build_seconds=build_seconds,
        solve_seconds=timer.elapsed() - build_seconds,
        solver=SOLVER_NAME,
        moves=moves,
        explanation=explanation + tuple(f"{limit}: {cut}" for cut in timer.cut),
        stats=stats,
        penalty=best.objective - cost,
        unplaced={
            inst.shard_ids[s]: why.get(int(s), "no room within the move budget and time limit")
            for s in np.flatnonzero(host_of == NO_INDEX)
        },
        unfixed=unfixed,
        cut=tuple(timer.cut),
    )


def _affordable(timer: _Timer, top_k: int | None) -> tuple[bool, int | None]:
    """(whether the MILP path fits in the time left, candidates per shard it gets).

    The problem build, the LP and the MIP each cost at least about what building the instance,
    the candidates and the pre-checks did (at the cluster shape the LP takes 3-10 times that),
    so with less than that left the heuristic gets all of it; with less than RICH_RATIO times
    that, the problem keeps proportionally fewer of each shard's cheapest candidates (pricing
    adds back the ones the LP asks for, as far as time allows).
    """
    spent, left = timer.elapsed(), timer.remaining()
    if left < MILP_RATIO * spent:
        timer.cut.append(
            f"problem, LP and MIP skipped: {max(left, 0):.1f} s left after {spent:.1f} s of "
            "instance, candidates and pre-checks; the plan is the heuristic's, its gap unknown"
        )
        return False, top_k
    if top_k is None or left >= RICH_RATIO * spent:
        return True, top_k
    k = max(MIN_TOP_K, int(top_k * left / (RICH_RATIO * spent)))
    if k < top_k:
        timer.cut.append(
            f"candidates: the {k} cheapest per shard instead of {top_k} ({left:.1f} s left "
            f"after {spent:.1f} s of instance, candidates and pre-checks)"
        )
    return True, min(k, top_k)


def _heuristic(
    inst: Instance, cands: Candidates, lp_x: np.ndarray, seconds: float, timer: _Timer
) -> np.ndarray:
    began = perf_counter()
    chosen = lp_guided_assignment(inst, cands, lp_x, max(seconds, 0.0))
    timer.add("heuristic", began)
    if perf_counter() - began >= seconds:
        share = f"stopped at its {seconds:.1f} s share" if seconds > 0 else "no time left"
        timer.cut.append(
            f"heuristic{' (LP-guided)' if lp_x.any() else ''}: {share}; "
            "shards not reached yet stay where they run"
        )
    return chosen


def solve_placement(inp: PlacementInput, options: SolveOptions | None = None) -> PlacementResult:
    """The best plan found within the time limit: minimum cost plus the elastic model's price of
    what cannot be fixed (overload, unplaced shards, broken rules), with what is left unfixed,
    the pre-check verdicts that say why, and the phases the limit cut short
    (`PlacementResult.cut`)."""
    options = options or SolveOptions()
    timer = _Timer(options.time_limit_s)
    began = perf_counter()
    inst = build_instance(inp)
    timer.add("instance", began)
    # the checker and the moves take a fraction of the instance build; the rest of the reserve
    # covers what a solver runs past its deadline between two looks at the clock
    timer.reserve = max(timer.reserve, FINISH_BUILD_RATIO * timer.phases["instance"])
    began = perf_counter()
    cands = eligible_candidates(inst)
    pen = penalties(inst, cands)
    timer.add("candidates", began)
    began = perf_counter()
    why = unplaceable(inst)
    families_checked = timer.remaining() > 0
    if not families_checked:
        timer.cut.append("pre-checks: only shards no host can hold (time limit reached)")
    explanation = pre_checks(inst, why, families=families_checked)
    timer.add("pre_checks", began)

    milp, top_k = _affordable(timer, options.top_k)
    no_lp = np.zeros(len(cands))
    if not milp:
        seed = _heuristic(inst, cands, no_lp, timer.remaining(), timer)
        # the problem over the plan's own columns prices it exactly: rows without them are 0
        only_seed = np.zeros(len(cands), dtype=bool)
        only_seed[seed[seed != NO_INDEX]] = True
        search = _Search(inst, cands, pen, only_seed, timer)
        best = search.incumbent(seed)
        return _result(inp, inst, cands, best, None, None, explanation, why, options, timer, search)

    search = _Search(inst, cands, pen, top_k_mask(inst, cands, top_k), timer)
    seed = _heuristic(inst, cands, no_lp, timer.remaining() * FIRST_HEURISTIC_SHARE, timer)
    best = search.incumbent(seed)
    lp_x, lp_bound = search.price(PRICING_TIME_SHARE) if timer.remaining() > 0 else (None, None)
    if lp_x is None:
        timer.cut.append(
            "LP: not solved in the time left; the plan is the heuristic's, its gap unknown"
        )
    bound = lp_bound
    if lp_x is not None:
        chosen = _heuristic(inst, cands, lp_x, timer.remaining() * HEURISTIC_TIME_SHARE, timer)
        found = search.incumbent(chosen)
        if found.objective < best.objective:
            best = found
    within_gap = bound is not None and best.objective - bound <= options.mip_rel_gap * abs(
        best.objective
    )
    mip_limit = timer.remaining() * MIP_TIME_SHARE
    if bound is not None and not within_gap:
        if mip_limit < MIP_ROOT_RATIO * search.lp_seconds or mip_limit <= 0:
            timer.cut.append(
                f"MIP: skipped, {max(mip_limit, 0):.1f} s left for it and the last LP took "
                f"{search.lp_seconds:.1f} s; the plan is the heuristics' best"
            )
        else:
            found, mip = search.mip(best, options.mip_rel_gap, mip_limit)
            if mip is None:
                timer.cut.append(
                    "MIP: its worker process was stopped at the end of the solving time "
                    "before an answer; the plan is the heuristics' best"
                )
            elif not mip.proven:
                timer.cut.append("MIP: stopped at its time share before proving the gap")
            if found is not None and found.objective <= best.objective + 1e-9:
                best = found
                if search.active.all() and mip is not None and mip.dual_bound is not None:
                    bound = max(bound, mip.dual_bound)
    return _result(
        inp, inst, cands, best, lp_bound, bound, explanation, why, options, timer, search
    )
