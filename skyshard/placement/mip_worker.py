"""The MIP in a worker process that can be stopped at the deadline.

Before its first node HiGHS presolves, checks the start and solves the root LP without looking
at its clock or the interrupt callback; on a large MIP that alone can outlast the limit several
times over, and only a process can be stopped. The worker is a fresh interpreter running this
module (multiprocessing's spawn would re-run the caller's main module, which a script without a
main guard cannot survive); problem and answer cross its pipes as .npz archives (numpy arrays
only, never pickles).
"""

from __future__ import annotations

import io
import subprocess
import sys
from time import perf_counter

import numpy as np
from scipy import sparse

from skyshard.placement.highs import MipOutcome, solve_mip
from skyshard.placement.problem import MilpProblem

_ARRAYS = ("cost", "row_lower", "row_upper", "upper", "integrality", "columns", "slack_row")


def _npz(**arrays: np.ndarray | float | int | bool) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    return buffer.getvalue()


def _request(
    problem: MilpProblem, time_limit_s: float, mip_rel_gap: float, start: np.ndarray | None
) -> bytes:
    matrix = problem.matrix
    return _npz(
        **{name: getattr(problem, name) for name in _ARRAYS},
        assignment_rows=problem.assignment_rows,
        data=matrix.data,
        indices=matrix.indices,
        indptr=matrix.indptr,
        shape=np.array(matrix.shape),
        first_helper=problem.first_helper,
        first_slack=problem.first_slack,
        time_limit_s=time_limit_s,
        mip_rel_gap=mip_rel_gap,
        start=np.zeros(0) if start is None else start,
        has_start=start is not None,
    )


def _solve_request(request: bytes) -> bytes:
    with np.load(io.BytesIO(request), allow_pickle=False) as got:
        problem = MilpProblem(
            **{name: got[name] for name in _ARRAYS},
            matrix=sparse.csc_matrix(
                (got["data"], got["indices"], got["indptr"]), shape=tuple(got["shape"])
            ),
            first_helper=int(got["first_helper"]),
            first_slack=int(got["first_slack"]),
            assignment_rows=got["assignment_rows"],
            priced=(),
        )
        start = got["start"] if bool(got["has_start"]) else None
        outcome = solve_mip(
            problem, float(got["time_limit_s"]), float(got["mip_rel_gap"]), start=start
        )
    return _npz(
        feasible=outcome.feasible,
        proven=outcome.proven,
        infeasible=outcome.infeasible,
        values=np.zeros(0) if outcome.values is None else outcome.values,
        objective=np.nan if outcome.objective is None else outcome.objective,
        dual_bound=np.nan if outcome.dual_bound is None else outcome.dual_bound,
    )


def _outcome(answer: bytes) -> MipOutcome:
    with np.load(io.BytesIO(answer), allow_pickle=False) as got:
        feasible = bool(got["feasible"])
        objective, dual_bound = float(got["objective"]), float(got["dual_bound"])
        return MipOutcome(
            feasible=feasible,
            proven=bool(got["proven"]),
            infeasible=bool(got["infeasible"]),
            values=got["values"] if feasible else None,
            objective=None if np.isnan(objective) else objective,
            dual_bound=None if np.isnan(dual_bound) else dual_bound,
        )


def solve_mip_in_worker(
    problem: MilpProblem,
    time_limit_s: float,
    mip_rel_gap: float,
    *,
    start: np.ndarray | None,
    kill_after_s: float,
) -> MipOutcome | None:
    """`highs.solve_mip` in a worker process, killed if it has not answered `kill_after_s`
    after the call (None)."""
    began = perf_counter()
    request = _request(problem, time_limit_s, mip_rel_gap, start)
    command = [sys.executable, "-m", "skyshard.placement.mip_worker"]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as worker:
        try:
            answer, _ = worker.communicate(
                request, timeout=max(kill_after_s - (perf_counter() - began), 0.01)
            )
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()
            return None
    if worker.returncode != 0:  # it died without an answer (out of memory, killed)
        return None
    return _outcome(answer)


def main() -> None:
    sys.stdout.buffer.write(_solve_request(sys.stdin.buffer.read()))


if __name__ == "__main__":
    main()
