"""Primal heuristic: keep the LP's integral choices, insert the rest, improve by local search.

The shards the LP relaxation puts wholly on one host form a partial assignment that already
meets every constraint (dropping the fractional shards only lowers each <= row, and an
affinity group stays on the provider the LP gave it). The fractional shards are then inserted
one at a time, largest first, on their cheapest host that keeps every rule, moving other
shards out of the way when nothing has room. If that fails, the insertion starts again from
every shard that may stay put staying put. Relocating single shards to cheaper feasible hosts
then improves the whole assignment. Each step checks every constraint family, GPU devices
included. A shard that cannot be inserted anywhere stays on its current host even where that
breaks a rule, or stays unplaced if it has none: the elastic model prices what is left.
"""

from __future__ import annotations

from time import perf_counter

import numpy as np

from skyshard.placement.candidates import Candidates, CurrentHost
from skyshard.placement.constraints.base import Trackers
from skyshard.placement.instance import NO_INDEX, Instance

INTEGRAL = 1 - 1e-6
IMPROVEMENT = 1e-9
EJECTION_TRIES = 10


class _Assignment:
    """A partial assignment with every family's tracker, to test a column."""

    def __init__(self, inst: Instance, cands: Candidates) -> None:
        self.inst, self.cands = inst, cands
        self.col_of = np.full(inst.n_shards, NO_INDEX, dtype=np.int64)
        self.trackers = Trackers(inst.constraints, inst, cands)
        self.bounds = np.searchsorted(cands.shard, np.arange(inst.n_shards + 1))

    def options(self, shard: int) -> np.ndarray:
        """Columns of the (unassigned) shard that keep every constraint, cheapest first."""
        cands = self.cands
        cols = np.arange(self.bounds[shard], self.bounds[shard + 1])
        cols = cols[self.trackers.fits(shard, cols, cands.host[cols])]
        return cols[np.argsort(cands.cost[cols], kind="stable")]

    def assign(self, shard: int, col: int) -> None:
        self.col_of[shard] = col
        self.trackers.update(shard, col, int(self.cands.host[col]), +1)

    def unassign(self, shard: int) -> int:
        col = int(self.col_of[shard])
        self.trackers.update(shard, col, int(self.cands.host[col]), -1)
        self.col_of[shard] = NO_INDEX
        return col


def _make_room(state: _Assignment, shard: int, col: int) -> list[tuple[int, int]] | None:
    """Moves shards off the column's host, each to its cheapest other feasible host, until the
    shard fits there; returns the moves as (shard, old column), or None (nothing changed)."""
    inst, cands = state.inst, state.cands
    host = int(cands.host[col])
    done: list[tuple[int, int]] = []
    while col not in state.options(shard):
        short = state.trackers.short(shard, host)
        on_host = np.flatnonzero(state.col_of >= 0)
        on_host = on_host[cands.host[state.col_of[on_host]] == host]
        on_host = on_host[(inst.demand[on_host][:, short] > 0).any(axis=1)]
        best: tuple[float, int, int] | None = None
        for other in on_host if short.any() else ():
            old = state.unassign(int(other))
            options = state.options(int(other))
            options = options[cands.host[options] != host]
            if len(options):
                freed = inst.demand[other, short] / np.maximum(inst.demand[shard, short], 1e-9)
                penalty = (cands.cost[options[0]] - cands.cost[old]) / max(freed.min(), 1e-9)
                if best is None or penalty < best[0]:
                    best = (float(penalty), int(other), int(options[0]))
            state.assign(int(other), old)
        if best is None:
            _undo(state, done)
            return None
        _, other, new = best
        done.append((other, state.unassign(other)))
        state.assign(other, new)
    return done


def _undo(state: _Assignment, done: list[tuple[int, int]]) -> None:
    for other, old in reversed(done):
        state.unassign(other)
        state.assign(other, old)


def _insert(state: _Assignment, shard: int, stay: int) -> bool:
    """Puts the shard on its `stay` column if that is given and feasible, else on its cheapest
    feasible host, else on the host where moving other shards away costs least (among its
    EJECTION_TRIES cheapest columns)."""
    options = state.options(shard)
    if len(options):
        state.assign(shard, stay if stay in options else int(options[0]))
        return True
    cands = state.cands
    lo, hi = state.bounds[shard], state.bounds[shard + 1]
    best: tuple[float, int] | None = None
    for col in (lo + np.argsort(cands.cost[lo:hi], kind="stable"))[:EJECTION_TRIES]:
        done = _make_room(state, shard, int(col))
        if done is None:
            continue
        delta = cands.cost[col] + sum(
            cands.cost[state.col_of[o]] - cands.cost[old] for o, old in done
        )
        if best is None or delta < best[0]:
            best = (float(delta), int(col))
        _undo(state, done)
    if best is None:
        return False
    done = _make_room(state, shard, best[1])
    assert done is not None
    state.assign(shard, best[1])
    return True


def _improve(state: _Assignment, deadline: float) -> None:
    """Places unplaced shards where they now fit and moves single shards to cheaper feasible
    hosts, until nothing improves or time is up."""
    cands = state.cands
    cheapest = np.full(state.inst.n_shards, np.inf)
    np.minimum.at(cheapest, cands.shard, cands.cost)
    cost = np.append(cands.cost, np.inf)  # NO_INDEX (-1) reads the last entry: unplaced
    improved = True
    while improved and perf_counter() < deadline:
        improved = False
        for shard in np.flatnonzero(cheapest < cost[state.col_of] - IMPROVEMENT):
            if perf_counter() > deadline:
                return
            old = state.unassign(int(shard)) if state.col_of[shard] != NO_INDEX else NO_INDEX
            options = state.options(int(shard))
            best = int(options[0]) if len(options) else old
            if cost[best] < cost[old] - IMPROVEMENT:
                improved = True
            else:
                best = old
            if best != NO_INDEX:
                state.assign(int(shard), best)


def _complete(state: _Assignment, seed: np.ndarray, deadline: float, keep: bool) -> int:
    """Assigns the seed columns, then inserts the rest (with `keep`, each where it runs if it
    still fits there: moves only for relief); a shard that fits nowhere (or is reached after
    the deadline) stays where it is, or unplaced. Returns how many were left like that."""
    inst, cands = state.inst, state.cands
    for col in seed:
        state.assign(int(cands.shard[col]), int(col))
    rest = np.flatnonzero(state.col_of == NO_INDEX)
    size = (inst.demand[rest] / np.maximum(inst.capacity.mean(axis=0), 1e-9)).max(axis=1)
    grouped = inst.affinity[rest] != NO_INDEX
    stay_col = np.full(inst.n_shards, NO_INDEX, dtype=np.int64)
    stay_col[cands.shard[cands.stays]] = np.flatnonzero(cands.stays)
    left = 0
    for shard in rest[np.lexsort((rest, -size, ~grouped))]:
        stay = int(stay_col[shard]) if keep else NO_INDEX
        if perf_counter() < deadline and _insert(state, int(shard), stay):
            continue
        left += 1
        if stay_col[shard] != NO_INDEX:
            state.assign(int(shard), int(stay_col[shard]))
    return left


def lp_guided_assignment(
    inst: Instance, cands: Candidates, lp_x: np.ndarray, time_limit_s: float
) -> np.ndarray:
    """The chosen candidate index per shard (NO_INDEX: unplaced).

    `lp_x` is the LP value of every candidate (0 for those left out of the LP; all zero: no
    LP yet). If the LP's integral part cannot be completed, or there is no LP, the shards that
    may stay where they are form the seed (they agree with every rule by definition of
    CurrentHost.STAYABLE) and only the others are inserted: relief first. Of the two seeds, the
    one leaving fewer shards where they could not be fitted wins.
    """
    deadline = perf_counter() + time_limit_s
    staying = cands.stays & (cands.state[cands.shard] == CurrentHost.STAYABLE)
    seeds = [(np.flatnonzero(staying), True)]
    if lp_x.any():
        seeds.insert(0, (np.flatnonzero(lp_x > INTEGRAL), False))
    best: tuple[int, _Assignment] | None = None
    for seed, keep in seeds:
        state = _Assignment(inst, cands)
        left = _complete(state, seed, deadline, keep)
        if best is None or left < best[0]:
            best = (left, state)
        if left == 0:
            break
    assert best is not None
    _improve(best[1], deadline)
    return best[1].col_of.copy()
