"""Builds the elastic placement MILP as sparse arrays, rows by family.

Columns: x (binary, one per chosen candidate), u (per shard: it gets no host), helpers (added
by constraint families, e.g. affinity y per group and provider, integer GPU devices per host and
slot class) and slack (continuous, one per elastic row, priced by `Penalties`). Rows over the
candidate columns given as `active`: the assignment rows (every shard on exactly one host, or
u = 1, priced and reported as unplaced; only for shards that cannot stay where they run: a new
shard, or one whose host is gone or unscored), then each constraint family's rows in registry
order (`skyshard/placement/constraints/`: capacity, GPU devices, anti-affinity, affinity,
latency, the move budget; each family's docstring states its rows).
Every shard can stay where it is (or take u), so the problem is always feasible: what cannot be
fixed shows up as priced slack, never as "infeasible".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from skyshard.placement.candidates import Candidates
from skyshard.placement.constraints.base import Build, Family, Rows
from skyshard.placement.instance import Instance

# A rule broken, or a small shard's worth of overload, costs this many times the largest
# saving any single shard could make by moving: relief always wins over price.
PENALTY_WEIGHT = 100.0


@dataclass(frozen=True)
class Penalties:
    """Prices of the elastic model: `per_unit` (resources,) per unit of overload; `violation`
    per broken rule unit (extra provider, extra group member on a host, latency conflict,
    missing GPU device); `unplaced` per shard without a host; `blocked_stay` per shard left on
    a host its policy no longer allows."""

    per_unit: np.ndarray
    violation: float
    unplaced: float
    blocked_stay: float


def penalties(inst: Instance, cands: Candidates) -> Penalties:
    spread = 0.0
    if len(cands):
        high = np.full(inst.n_shards, -np.inf)
        low = np.full(inst.n_shards, np.inf)
        np.maximum.at(high, cands.shard, cands.cost)
        np.minimum.at(low, cands.shard, cands.cost)
        has = np.isfinite(high)
        spread = float(max((high - low)[has].max(initial=0.0), np.abs(cands.cost).max()))
    unit = PENALTY_WEIGHT * max(spread, 1e-6)
    # a "small shard" of each resource: the 10th percentile of positive demands, floored so a
    # few tiny demands cannot make the penalty numerically huge
    small = np.array(
        [
            max(
                float(np.percentile(col[col > 0], 10)) if (col > 0).any() else 1.0,
                1e-3 * float(inst.capacity[:, r].max(initial=1.0)),
                1e-9,
            )
            for r, col in enumerate(inst.demand.T)
        ]
    )
    return Penalties(per_unit=unit / small, violation=unit, unplaced=2 * unit, blocked_stay=unit)


@dataclass(frozen=True, eq=False)
class MilpProblem:
    """min cost @ v  s.t.  row_lower <= matrix @ v <= row_upper, 0 <= v <= upper.

    Columns: x over `columns` (indices into the Candidates), then u (one per shard), then the
    helpers from `first_helper`, then the slacks from `first_slack`; `slack_row` is each slack's
    row. The row maps let the solver price candidates left out.
    """

    cost: np.ndarray
    matrix: sparse.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    upper: np.ndarray
    integrality: np.ndarray
    columns: np.ndarray
    first_helper: int
    first_slack: int
    slack_row: np.ndarray
    assignment_rows: np.ndarray  # (shards,)
    priced: tuple[tuple[Family, np.ndarray], ...]  # families whose rows enter pricing, row maps

    @property
    def n_x(self) -> int:
        return len(self.columns)


def _cat(parts: list[np.ndarray], dtype: type = float) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def build_problem(
    inst: Instance, cands: Candidates, active: np.ndarray, pen: Penalties
) -> MilpProblem:
    """The elastic MILP over the candidates where `active` is True."""
    columns = np.flatnonzero(active)
    shard, host = cands.shard[columns], cands.host[columns]
    n_x = len(columns)
    first_helper = n_x + inst.n_shards
    rows = Rows(first_helper)
    assignment_rows = rows.add(
        inst.n_shards,
        np.concatenate([shard, np.arange(inst.n_shards)]),
        np.arange(first_helper),
        1.0,
        1.0,
        1.0,
    )
    build = Build(inst, cands, columns, shard, host, rows, pen)
    priced = []
    for family in inst.constraints:
        row_map = family.rows(build)
        if row_map is not None:
            priced.append((family, row_map))

    first_slack = first_helper + rows.n_helpers
    slack_row = _cat(rows.slack_rows, np.int64).astype(np.int64)
    n_cols = first_slack + len(slack_row)
    matrix = sparse.coo_matrix(
        (
            np.concatenate([*rows.vals, -np.ones(len(slack_row))]),
            (
                np.concatenate([*rows.rows, slack_row]),
                np.concatenate([*rows.cols, np.arange(first_slack, n_cols)]),
            ),
        ),
        shape=(rows.n, n_cols),
    ).tocsc()
    x_cost = cands.cost[columns] + pen.blocked_stay * cands.blocked_stay[columns]
    # a shard that can stay where it runs is never "unplaced": it keeps running there
    can_be_unplaced = np.ones(inst.n_shards)
    can_be_unplaced[cands.shard[cands.stays]] = 0.0
    return MilpProblem(
        cost=np.concatenate(
            [
                x_cost,
                np.full(inst.n_shards, pen.unplaced),
                np.zeros(rows.n_helpers),
                _cat(rows.slack_price),
            ]
        ),
        matrix=matrix,
        row_lower=np.concatenate(rows.lower),
        row_upper=np.concatenate(rows.upper),
        upper=np.concatenate(
            [np.ones(n_x), can_be_unplaced, _cat(rows.helper_upper), _cat(rows.slack_upper)]
        ),
        integrality=np.concatenate(
            [
                np.ones(n_x, np.int32),
                np.zeros(inst.n_shards, np.int32),
                _cat(rows.helper_integer, np.int32).astype(np.int32),
                np.zeros(len(slack_row), np.int32),
            ]
        ),
        columns=columns,
        first_helper=first_helper,
        first_slack=first_slack,
        slack_row=slack_row,
        assignment_rows=assignment_rows,
        priced=tuple(priced),
    )


def solution_vector(problem: MilpProblem, chosen_column: np.ndarray) -> np.ndarray:
    """The cheapest full solution for the given x (problem column indices, at most one per
    shard): u for shards without a column, each helper at the least value its rows allow
    (y = largest member x, devices = ceil(class shards / k)), each slack at the excess of its
    row. `cost @ vector` is the elastic objective of that assignment."""
    values = np.zeros(len(problem.cost))
    values[chosen_column] = 1.0
    matrix = problem.matrix
    x_part = matrix[:, : problem.n_x] @ values[: problem.n_x]
    values[problem.n_x : problem.first_helper] = 1.0 - (x_part[problem.assignment_rows] > 0.5)
    helpers = matrix[:, problem.first_helper : problem.first_slack].tocoo()
    need = np.zeros(problem.first_slack - problem.first_helper)
    negative = helpers.data < 0
    np.maximum.at(
        need,
        helpers.col[negative],
        x_part[helpers.row[negative]] / -helpers.data[negative],
    )
    integer = problem.integrality[problem.first_helper : problem.first_slack] == 1
    need[integer] = np.ceil(need[integer] - 1e-9)
    values[problem.first_helper : problem.first_slack] = need
    activity = matrix[:, : problem.first_slack] @ values[: problem.first_slack]
    excess = activity[problem.slack_row] - problem.row_upper[problem.slack_row]
    values[problem.first_slack :] = np.clip(excess, 0.0, problem.upper[problem.first_slack :])
    return values
