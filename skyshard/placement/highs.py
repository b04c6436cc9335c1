"""Runs HiGHS (through highspy) on a MilpProblem: the LP relaxation with duals, or the MIP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import highspy
import numpy as np

from skyshard.placement.problem import MilpProblem

SOLVER_NAME = (
    f"HiGHS {highspy.HIGHS_VERSION_MAJOR}.{highspy.HIGHS_VERSION_MINOR}."
    f"{highspy.HIGHS_VERSION_PATCH} (highspy)"
)


@dataclass(frozen=True)
class LpOutcome:
    optimal: bool
    infeasible: bool  # proven; neither flag set means the time limit stopped it
    objective: float | None
    row_dual: np.ndarray | None
    values: np.ndarray | None


@dataclass(frozen=True)
class MipOutcome:
    feasible: bool  # an integer solution was found
    proven: bool  # HiGHS proved optimality within the relative gap
    infeasible: bool  # HiGHS proved there is no integer solution
    values: np.ndarray | None
    objective: float | None
    dual_bound: float | None


INTERRUPTS = (
    highspy.cb.HighsCallbackType.kCallbackSimplexInterrupt,
    highspy.cb.HighsCallbackType.kCallbackIpmInterrupt,
    highspy.cb.HighsCallbackType.kCallbackMipInterrupt,
)


def _stop_at(deadline: float) -> Callable[..., None]:
    """A callback that interrupts HiGHS once `deadline` (perf_counter) has passed. HiGHS's own
    time_limit is checked between MIP nodes and in places of the LP; the simplex interrupt is
    asked every iteration, so a large LP stops within milliseconds of the deadline."""

    def interrupt(kind: int, message: str, out: object, data_in: Any, user: object) -> None:
        if perf_counter() > deadline:
            data_in.user_interrupt = True

    return interrupt


def _load(
    problem: MilpProblem,
    *,
    integer: bool,
    time_limit_s: float,
    mip_rel_gap: float,
) -> highspy.Highs:
    # The raw binding: the `highspy.Highs` wrapper prints HiGHS's banner while it is being
    # constructed, before output_flag can be turned off; we need none of its extras.
    highs = highspy._Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("random_seed", 0)
    highs.setOptionValue("time_limit", max(time_limit_s, 0.01))
    highs.setCallback(_stop_at(perf_counter() + max(time_limit_s, 0.01)), None)
    for kind in INTERRUPTS:
        highs.startCallback(kind)
    highs.setOptionValue("mip_rel_gap", mip_rel_gap)
    matrix = problem.matrix
    n_rows, n_cols = matrix.shape
    highs.passModel(
        n_cols,
        n_rows,
        matrix.nnz,
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        0.0,
        problem.cost,
        np.zeros(n_cols),
        problem.upper,
        problem.row_lower,
        problem.row_upper,
        matrix.indptr.astype(np.int32),
        matrix.indices.astype(np.int32),
        matrix.data,
        problem.integrality if integer else np.zeros(n_cols, dtype=np.int32),
    )
    return highs


def _is_infeasible(status: highspy.HighsModelStatus) -> bool:
    # Costs are finite and variables bounded, so "unbounded or infeasible" means infeasible.
    return status in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    )


def solve_lp(problem: MilpProblem, time_limit_s: float) -> LpOutcome:
    highs = _load(problem, integer=False, time_limit_s=time_limit_s, mip_rel_gap=0.0)
    highs.run()
    status = highs.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        solution = highs.getSolution()
        objective = highs.getInfo().objective_function_value
        return LpOutcome(
            True, False, objective, np.array(solution.row_dual), np.array(solution.col_value)
        )
    return LpOutcome(False, _is_infeasible(status), None, None, None)


def solve_mip(
    problem: MilpProblem,
    time_limit_s: float,
    mip_rel_gap: float,
    *,
    start: np.ndarray | None = None,
) -> MipOutcome:
    """`start` is a known feasible solution to begin from."""
    began = perf_counter()
    highs = _load(problem, integer=True, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap)
    if start is not None:
        solution = highspy.HighsSolution()
        solution.col_value = start.tolist()
        solution.value_valid = True
        highs.setSolution(solution)
    highs.run()
    status = highs.getModelStatus()
    info = highs.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    if not has_solution:
        return MipOutcome(False, False, _is_infeasible(status), None, None, None)
    values = np.array(highs.getSolution().col_value)
    objective = info.objective_function_value
    if start is not None and abs(problem.cost @ values - objective) > 1e-6 * max(1, abs(objective)):
        # HiGHS 1.16 with presolve can report the better objective it found yet hand back the
        # start vector; solving again without the start gets the solution itself.
        return solve_mip(problem, time_limit_s - (perf_counter() - began), mip_rel_gap)
    return MipOutcome(
        feasible=True,
        proven=status == highspy.HighsModelStatus.kOptimal,
        infeasible=False,
        values=values,
        objective=objective,
        dual_bound=info.mip_dual_bound,
    )
