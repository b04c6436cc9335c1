"""Builds the elastic placement MILP as sparse arrays, rows by family.

Columns: x (binary, one per chosen candidate), u (per shard: it gets no host), helpers (affinity
y per group and provider; integer GPU devices per host and slot class) and slack (continuous,
one per elastic row, priced by `Penalties`). Rows over the candidate columns given as `active`:
- assignment: every shard on exactly one host, or u = 1 (priced, reported as unplaced; only for
  shards that cannot stay where they run: a new shard, or one whose host is gone or unscored);
- capacity: per host and resource, sum of upper-bound demand - slack <= capacity;
- devices: per host with GPU devices, class-k shards <= k * devices given to class k, and whole
  devices + devices given to classes - slack <= devices (see devices.py);
- anti-affinity: at most one shard of a group per host, + slack;
- affinity: a group shares one provider: x[s, h of p] <= y[g, p] for every member and
  sum_p y[g, p] - slack <= 1 (same provider rather than same host, because a whole group
  seldom fits one host and provider-local traffic is what matters);
- latency: for a dependency (a, b) with limit L, hosts whose sets of too-far hosts are equal
  form a class C (with latency measured per provider, one class per provider); one row
  sum(x[a, h] for h in C) + sum(x[b, g] for g too far from C) - slack <= 1, which forbids
  exactly the violating pairs with far fewer rows than one per pair;
- budget (hard): at most max_moves candidates that move a shard off its current host.
Every shard can stay where it is (or take u), so the problem is always feasible: what cannot be
fixed shows up as priced slack, never as "infeasible".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from skyshard.placement.candidates import Candidates
from skyshard.placement.devices import MAX_SLOTS, NO_DEVICES
from skyshard.placement.instance import NO_INDEX, Instance
from skyshard.placement.model import RESOURCES

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
    capacity_rows: np.ndarray  # (hosts, resources)
    affinity_rows: np.ndarray  # (shards, providers), NO_INDEX where none

    @property
    def n_x(self) -> int:
        return len(self.columns)


class _Rows:
    """Accumulates COO triplets and row bounds one block of rows at a time, the helper columns
    (numbered from `first_helper`) and, per elastic row, its slack's price and upper bound."""

    def __init__(self, first_helper: int) -> None:
        self.n = 0
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.first_helper = first_helper
        self.helper_upper: list[np.ndarray] = []
        self.helper_integer: list[np.ndarray] = []
        self.n_helpers = 0
        self.slack_rows: list[np.ndarray] = []
        self.slack_price: list[np.ndarray] = []
        self.slack_upper: list[np.ndarray] = []

    def add(
        self,
        count: int,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray | float,
        lower: np.ndarray | float,
        upper: np.ndarray | float,
        slack: tuple[np.ndarray | float, np.ndarray | float] | None = None,
    ) -> np.ndarray:
        """Adds `count` rows; `rows` are 0-based within the block. `slack` = (price per unit,
        largest useful value) makes the rows elastic. Returns their row ids."""
        self.rows.append(np.asarray(rows, dtype=np.int64) + self.n)
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.broadcast_to(np.asarray(vals, dtype=float), (len(rows),)))
        self.lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (count,)))
        self.upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (count,)))
        ids = np.arange(self.n, self.n + count)
        self.n += count
        if slack is not None:
            self.slack_rows.append(ids)
            self.slack_price.append(np.broadcast_to(np.asarray(slack[0], dtype=float), (count,)))
            self.slack_upper.append(np.broadcast_to(np.asarray(slack[1], dtype=float), (count,)))
        return ids

    def helpers(self, count: int, upper: np.ndarray | float, integer: bool) -> np.ndarray:
        self.helper_upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (count,)))
        self.helper_integer.append(np.full(count, int(integer), dtype=np.int32))
        ids = np.arange(self.n_helpers, self.n_helpers + count) + self.first_helper
        self.n_helpers += count
        return ids


def _cat(parts: list[np.ndarray], dtype: type = float) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _anti_affinity(
    inst: Instance, shard: np.ndarray, host: np.ndarray, rows: _Rows, pen: Penalties
) -> None:
    group = inst.anti_affinity[shard]
    cols = np.flatnonzero(group != NO_INDEX)
    keys = group[cols] * inst.n_hosts + host[cols]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    shared = counts[inverse] >= 2
    row_of_key = np.cumsum(counts >= 2) - 1
    rows.add(
        int((counts >= 2).sum()),
        row_of_key[inverse[shared]],
        cols[shared],
        1.0,
        -np.inf,
        1.0,
        slack=(pen.violation, counts[counts >= 2] - 1),
    )


def _affinity(
    inst: Instance,
    cands: Candidates,
    shard: np.ndarray,
    host: np.ndarray,
    rows: _Rows,
    pen: Penalties,
) -> np.ndarray:
    """Adds y helpers and rows; returns the (shards, providers) map of member rows."""
    row_map = np.full((inst.n_shards, len(inst.provider_ids)), NO_INDEX, dtype=np.int64)
    if not inst.affinity_names:
        return row_map
    group_size = np.bincount(
        inst.affinity[inst.affinity != NO_INDEX], minlength=len(inst.affinity_names)
    )
    grouped = inst.affinity[cands.shard] != NO_INDEX
    grouped &= group_size[np.maximum(inst.affinity[cands.shard], 0)] >= 2
    pairs = np.unique(
        np.column_stack(
            [inst.affinity[cands.shard[grouped]], inst.host_provider[cands.host[grouped]]]
        ),
        axis=0,
    ).reshape(-1, 2)
    if not len(pairs):
        return row_map
    y_cols = rows.helpers(len(pairs), 1.0, integer=False)
    row_shard, row_y = [], []
    for y, (group, _provider) in enumerate(pairs):
        members = np.flatnonzero(inst.affinity == group)
        row_shard.append(members)
        row_y.append(np.full(len(members), y))
    member, y_of_row = np.concatenate(row_shard), np.concatenate(row_y)
    row_map[member, pairs[y_of_row, 1]] = np.arange(len(member))
    local = row_map[shard, inst.host_provider[host]]
    x_cols = np.flatnonzero(local != NO_INDEX)
    ids = rows.add(
        len(member),
        np.concatenate([local[x_cols], np.arange(len(member))]),
        np.concatenate([x_cols, y_cols[y_of_row]]),
        np.concatenate([np.ones(len(x_cols)), -np.ones(len(member))]),
        -np.inf,
        0.0,
    )
    row_map[row_map != NO_INDEX] = ids[row_map[row_map != NO_INDEX]]
    groups, group_row, providers = np.unique(pairs[:, 0], return_inverse=True, return_counts=True)
    rows.add(
        len(groups),
        group_row.ravel(),
        y_cols,
        1.0,
        -np.inf,
        1.0,
        slack=(pen.violation, providers - 1),
    )
    return row_map


def _latency(
    inst: Instance, shard: np.ndarray, host: np.ndarray, rows: _Rows, pen: Penalties
) -> None:
    classes_by_limit: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    block_rows, block_cols = [], []
    n_rows = 0
    for a, b, limit in zip(inst.dep_a, inst.dep_b, inst.dep_limit, strict=True):
        if limit not in classes_by_limit:
            too_far, class_of_host = np.unique(inst.latency > limit, axis=0, return_inverse=True)
            classes_by_limit[limit] = (too_far, class_of_host.ravel())
        too_far, class_of_host = classes_by_limit[limit]
        a_cols = np.arange(*np.searchsorted(shard, [a, a + 1]))
        b_cols = np.arange(*np.searchsorted(shard, [b, b + 1]))
        a_class = class_of_host[host[a_cols]]
        classes = np.unique(a_class)
        conflicts = too_far[classes][:, host[b_cols]]
        has_conflict = conflicts.any(axis=1)
        classes, conflicts = classes[has_conflict], conflicts[has_conflict]
        if not len(classes):
            continue
        on_row = np.searchsorted(classes, a_class)
        in_row = (on_row < len(classes)) & (
            classes[np.minimum(on_row, len(classes) - 1)] == a_class
        )
        b_row, b_col = np.nonzero(conflicts)
        block_rows += [n_rows + on_row[in_row], n_rows + b_row]
        block_cols += [a_cols[in_row], b_cols[b_col]]
        n_rows += len(classes)
    if n_rows:
        rows.add(
            n_rows,
            np.concatenate(block_rows),
            np.concatenate(block_cols),
            1.0,
            -np.inf,
            1.0,
            slack=(pen.violation, 1.0),
        )


def _devices(
    inst: Instance, shard: np.ndarray, host: np.ndarray, rows: _Rows, pen: Penalties
) -> None:
    """Per host with devices: class-k shards <= k * d[host, k]; whole + sum_k d - slack <= count."""
    on_devices = (inst.gpu_devices[host] != NO_DEVICES) & (
        (inst.gpu_whole[shard] > 0) | (inst.gpu_slots[shard] > 0)
    )
    if not on_devices.any():
        return
    cols = np.flatnonzero(on_devices)
    slots = inst.gpu_slots[shard[cols]]
    sharing = cols[slots > 0]
    keys, key_row = np.unique(
        host[sharing] * (MAX_SLOTS + 1) + inst.gpu_slots[shard[sharing]], return_inverse=True
    )
    key_host, key_k = keys // (MAX_SLOTS + 1), keys % (MAX_SLOTS + 1)
    d_cols = rows.helpers(len(keys), inst.gpu_devices[key_host], integer=True)
    rows.add(
        len(keys),
        np.concatenate([key_row.ravel(), np.arange(len(keys))]),
        np.concatenate([sharing, d_cols]),
        np.concatenate([np.ones(len(sharing)), -key_k.astype(float)]),
        -np.inf,
        0.0,
    )
    hosts, host_row = np.unique(host[cols], return_inverse=True)
    whole = cols[inst.gpu_whole[shard[cols]] > 0]
    whole_row = np.searchsorted(hosts, host[whole])
    d_row = np.searchsorted(hosts, key_host)
    rows.add(
        len(hosts),
        np.concatenate([whole_row, d_row]),
        np.concatenate([whole, d_cols]),
        np.concatenate([inst.gpu_whole[shard[whole]].astype(float), np.ones(len(d_cols))]),
        -np.inf,
        inst.gpu_devices[hosts].astype(float),
        slack=(
            pen.per_unit[RESOURCES.index("gpu")],
            np.bincount(host_row.ravel(), weights=inst.gpu_whole[shard[cols]] + 1.0),
        ),
    )


def build_problem(
    inst: Instance, cands: Candidates, active: np.ndarray, pen: Penalties
) -> MilpProblem:
    """The elastic MILP over the candidates where `active` is True."""
    columns = np.flatnonzero(active)
    shard, host = cands.shard[columns], cands.host[columns]
    n_x = len(columns)
    first_helper = n_x + inst.n_shards
    rows = _Rows(first_helper)
    assignment_rows = rows.add(
        inst.n_shards,
        np.concatenate([shard, np.arange(inst.n_shards)]),
        np.arange(first_helper),
        1.0,
        1.0,
        1.0,
    )
    n_res = inst.capacity.shape[1]
    col, res = np.nonzero(inst.demand[shard] > 0)
    capacity_rows = rows.add(
        inst.n_hosts * n_res,
        host[col] * n_res + res,
        col,
        inst.demand[shard[col], res],
        -np.inf,
        inst.capacity.ravel(),
        slack=(np.tile(pen.per_unit, inst.n_hosts), np.tile(inst.demand.sum(axis=0), inst.n_hosts)),
    ).reshape(inst.n_hosts, n_res)
    _devices(inst, shard, host, rows, pen)
    _anti_affinity(inst, shard, host, rows, pen)
    affinity_rows = _affinity(inst, cands, shard, host, rows, pen)
    if len(inst.dep_a):
        _latency(inst, shard, host, rows, pen)
    if inst.budget.max_moves is not None:
        moves = np.flatnonzero(cands.is_move[columns])
        rows.add(1, np.zeros(len(moves)), moves, 1.0, -np.inf, float(inst.budget.max_moves))

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
        capacity_rows=capacity_rows,
        affinity_rows=affinity_rows,
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
