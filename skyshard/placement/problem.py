"""Builds the placement MILP as sparse arrays: one binary x per chosen candidate, rows by family.

Rows (all over the candidate columns given as `active`):
- assignment: every shard on exactly one host;
- capacity: per host and resource, sum of upper-bound demand <= capacity;
- anti-affinity: at most one shard of a group per host;
- affinity: a group shares one provider; continuous y[group, provider] in [0, 1] with
  sum(x[s, h] for h of the provider) = y for every member s (same provider rather than same
  host, because a whole group seldom fits one host and provider-local traffic is what matters);
- latency: for a dependency (a, b) with limit L, hosts whose sets of too-far hosts are equal
  form a class C (with latency measured per provider, one class per provider); one row
  sum(x[a, h] for h in C) + sum(x[b, g] for g too far from C) <= 1, which forbids exactly the
  violating pairs with far fewer rows than one per pair;
- budget: at most max_moves candidates that move a shard off its current host.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import sparse

from skyshard.placement.candidates import Candidates
from skyshard.placement.instance import NO_INDEX, Instance


class Family(StrEnum):
    """Constraint families, named in infeasibility explanations."""

    CAPACITY = "capacity"
    LATENCY = "latency"
    AFFINITY = "affinity"  # affinity and anti-affinity
    BUDGET = "budget"  # max_moves
    HYSTERESIS = "hysteresis"  # minimum saving and move cooldown (a candidate filter)


ALL_FAMILIES = frozenset(Family)


@dataclass(frozen=True, eq=False)
class MilpProblem:
    """min cost @ v  s.t.  row_lower <= matrix @ v <= row_upper, 0 <= v <= 1.

    The first `n_x` variables are x over `columns` (indices into the Candidates); the rest are
    the continuous affinity y. The row maps let the solver price candidates left out.
    """

    cost: np.ndarray
    matrix: sparse.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    integrality: np.ndarray
    columns: np.ndarray
    assignment_rows: np.ndarray  # (shards,)
    capacity_rows: np.ndarray | None  # (hosts, resources)
    affinity_rows: np.ndarray | None  # (shards, providers), NO_INDEX where none

    @property
    def n_x(self) -> int:
        return len(self.columns)


class _Rows:
    """Accumulates COO triplets and row bounds, one block of rows at a time."""

    def __init__(self) -> None:
        self.n = 0
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []

    def add(
        self,
        count: int,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray | float,
        lower: np.ndarray | float,
        upper: np.ndarray | float,
    ) -> np.ndarray:
        """Adds `count` rows; `rows` are 0-based within the block. Returns their row ids."""
        self.rows.append(np.asarray(rows, dtype=np.int64) + self.n)
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.broadcast_to(np.asarray(vals, dtype=float), (len(rows),)))
        self.lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (count,)))
        self.upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (count,)))
        ids = np.arange(self.n, self.n + count)
        self.n += count
        return ids


def _anti_affinity(inst: Instance, shard: np.ndarray, host: np.ndarray, rows: _Rows) -> None:
    group = inst.anti_affinity[shard]
    cols = np.flatnonzero(group != NO_INDEX)
    keys = group[cols] * inst.n_hosts + host[cols]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    shared = counts[inverse] >= 2
    row_of_key = np.cumsum(counts >= 2) - 1
    rows.add(int((counts >= 2).sum()), row_of_key[inverse[shared]], cols[shared], 1.0, -np.inf, 1.0)


def _affinity(
    inst: Instance, cands: Candidates, shard: np.ndarray, host: np.ndarray, n_x: int, rows: _Rows
) -> tuple[int, np.ndarray]:
    """Adds y variables and rows; returns (number of y, (shards, providers) row map)."""
    row_map = np.full((inst.n_shards, len(inst.provider_ids)), NO_INDEX, dtype=np.int64)
    if not inst.affinity_names:
        return 0, row_map
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
        return 0, row_map
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
        np.concatenate([x_cols, n_x + y_of_row]),
        np.concatenate([np.ones(len(x_cols)), -np.ones(len(member))]),
        0.0,
        0.0,
    )
    row_map[row_map != NO_INDEX] = ids[row_map[row_map != NO_INDEX]]
    return len(pairs), row_map


def _latency(inst: Instance, shard: np.ndarray, host: np.ndarray, rows: _Rows) -> None:
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
        rows.add(n_rows, np.concatenate(block_rows), np.concatenate(block_cols), 1.0, -np.inf, 1.0)


def build_problem(
    inst: Instance,
    cands: Candidates,
    active: np.ndarray,
    families: frozenset[Family] = ALL_FAMILIES,
) -> MilpProblem:
    """The MILP over the candidates where `active` is True, with the given constraint families."""
    columns = np.flatnonzero(active)
    shard, host = cands.shard[columns], cands.host[columns]
    n_x = len(columns)
    rows = _Rows()
    assignment_rows = rows.add(inst.n_shards, shard, np.arange(n_x), 1.0, 1.0, 1.0)

    capacity_rows = None
    if Family.CAPACITY in families:
        n_res = inst.capacity.shape[1]
        col, res = np.nonzero(inst.demand[shard] > 0)
        capacity_rows = rows.add(
            inst.n_hosts * n_res,
            host[col] * n_res + res,
            col,
            inst.demand[shard[col], res],
            -np.inf,
            inst.capacity.ravel(),
        ).reshape(inst.n_hosts, n_res)

    n_y, affinity_rows = 0, None
    if Family.AFFINITY in families:
        _anti_affinity(inst, shard, host, rows)
        n_y, affinity_rows = _affinity(inst, cands, shard, host, n_x, rows)

    if Family.LATENCY in families and len(inst.dep_a):
        _latency(inst, shard, host, rows)

    if Family.BUDGET in families and inst.budget.max_moves is not None:
        moves = np.flatnonzero(cands.is_move[columns])
        rows.add(1, np.zeros(len(moves)), moves, 1.0, -np.inf, float(inst.budget.max_moves))

    matrix = sparse.coo_matrix(
        (np.concatenate(rows.vals), (np.concatenate(rows.rows), np.concatenate(rows.cols))),
        shape=(rows.n, n_x + n_y),
    ).tocsc()
    return MilpProblem(
        cost=np.concatenate([cands.cost[columns], np.zeros(n_y)]),
        matrix=matrix,
        row_lower=np.concatenate(rows.lower),
        row_upper=np.concatenate(rows.upper),
        integrality=np.concatenate([np.ones(n_x, np.int32), np.zeros(n_y, np.int32)]),
        columns=columns,
        assignment_rows=assignment_rows,
        capacity_rows=capacity_rows,
        affinity_rows=affinity_rows,
    )
