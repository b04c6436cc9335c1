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

from collections import Counter, defaultdict
from time import perf_counter

import numpy as np

from skyshard.placement.candidates import CAPACITY_TOLERANCE, Candidates, CurrentHost
from skyshard.placement.devices import MAX_SLOTS, NO_DEVICES, devices_needed, extra_devices
from skyshard.placement.instance import NO_INDEX, Instance
from skyshard.placement.model import RESOURCES

GPU = RESOURCES.index("gpu")

INTEGRAL = 1 - 1e-6
IMPROVEMENT = 1e-9
EJECTION_TRIES = 10


class _Assignment:
    """A partial assignment with the loads and group and dependency state to test a column."""

    def __init__(self, inst: Instance, cands: Candidates) -> None:
        self.inst, self.cands = inst, cands
        self.col_of = np.full(inst.n_shards, NO_INDEX, dtype=np.int64)
        self.load = np.zeros_like(inst.capacity)
        self.gpu_taken = np.zeros(inst.n_hosts, dtype=np.int64)
        self.slot_counts = np.zeros((inst.n_hosts, MAX_SLOTS + 1), dtype=np.int64)
        self.devices_used = np.zeros(inst.n_hosts, dtype=np.int64)
        self.anti_hosts: dict[int, Counter[int]] = defaultdict(Counter)
        self.affinity_members = np.zeros(len(inst.affinity_names), dtype=np.int64)
        self.affinity_provider = np.full(len(inst.affinity_names), NO_INDEX, dtype=np.int64)
        self.moves = 0
        self.max_moves = inst.budget.max_moves
        self.bounds = np.searchsorted(cands.shard, np.arange(inst.n_shards + 1))
        ends = np.concatenate([inst.dep_a, inst.dep_b])
        order = np.argsort(ends, kind="stable")
        self.dep_other = np.concatenate([inst.dep_b, inst.dep_a])[order]
        self.dep_limit = np.concatenate([inst.dep_limit, inst.dep_limit])[order]
        self.dep_bounds = np.searchsorted(ends[order], np.arange(inst.n_shards + 1))

    def host_of(self, shard: int) -> int:
        col = self.col_of[shard]
        return NO_INDEX if col == NO_INDEX else int(self.cands.host[col])

    def devices_fit(self, shard: int, hosts: np.ndarray) -> np.ndarray:
        inst = self.inst
        whole, slots = int(inst.gpu_whole[shard]), int(inst.gpu_slots[shard])
        devices = inst.gpu_devices[hosts]
        if whole == 0 and slots == 0:
            return np.ones(len(hosts), dtype=bool)
        extra = extra_devices(self.slot_counts[hosts], np.full(len(hosts), whole), slots)
        return (devices == NO_DEVICES) | (self.devices_used[hosts] + extra <= devices)

    def options(self, shard: int) -> np.ndarray:
        """Columns of the (unassigned) shard that keep every constraint, cheapest first."""
        inst, cands = self.inst, self.cands
        cols = np.arange(self.bounds[shard], self.bounds[shard + 1])
        hosts = cands.host[cols]
        ok = (
            self.load[hosts] + inst.demand[shard] <= inst.capacity[hosts] + CAPACITY_TOLERANCE
        ).all(axis=1)
        ok &= self.devices_fit(shard, hosts)
        group = inst.anti_affinity[shard]
        if group != NO_INDEX and self.anti_hosts[group]:
            taken = [h for h, n in self.anti_hosts[group].items() if n]
            ok &= ~np.isin(hosts, taken)
        group = inst.affinity[shard]
        if group != NO_INDEX and self.affinity_members[group]:
            ok &= inst.host_provider[hosts] == self.affinity_provider[group]
        for k in range(self.dep_bounds[shard], self.dep_bounds[shard + 1]):
            other = self.host_of(int(self.dep_other[k]))
            if other != NO_INDEX:
                ok &= inst.latency[hosts, other] <= self.dep_limit[k]
        if self.max_moves is not None and self.moves >= self.max_moves:
            ok &= ~cands.is_move[cols]
        cols = cols[ok]
        return cols[np.argsort(cands.cost[cols], kind="stable")]

    def _update(self, shard: int, col: int, sign: int) -> None:
        inst, cands = self.inst, self.cands
        host = int(cands.host[col])
        self.load[host] += sign * inst.demand[shard]
        if inst.gpu_devices[host] != NO_DEVICES and inst.demand[shard, GPU] > 0:
            self.gpu_taken[host] += sign * inst.gpu_whole[shard]
            self.slot_counts[host, inst.gpu_slots[shard]] += sign
            self.slot_counts[host, 0] = 0
            self.devices_used[host] = devices_needed(
                self.gpu_taken[host : host + 1], self.slot_counts[host : host + 1]
            )[0]
        if inst.anti_affinity[shard] != NO_INDEX:
            self.anti_hosts[int(inst.anti_affinity[shard])][host] += sign
        group = inst.affinity[shard]
        if group != NO_INDEX:
            self.affinity_members[group] += sign
            self.affinity_provider[group] = inst.host_provider[host]
        self.moves += sign * int(cands.is_move[col])

    def assign(self, shard: int, col: int) -> None:
        self.col_of[shard] = col
        self._update(shard, col, +1)

    def unassign(self, shard: int) -> int:
        col = int(self.col_of[shard])
        self._update(shard, col, -1)
        self.col_of[shard] = NO_INDEX
        return col


def _make_room(state: _Assignment, shard: int, col: int) -> list[tuple[int, int]] | None:
    """Moves shards off the column's host, each to its cheapest other feasible host, until the
    shard fits there; returns the moves as (shard, old column), or None (nothing changed)."""
    inst, cands = state.inst, state.cands
    host = int(cands.host[col])
    done: list[tuple[int, int]] = []
    while col not in state.options(shard):
        short = state.load[host] + inst.demand[shard] - inst.capacity[host] > CAPACITY_TOLERANCE
        short[GPU] |= not state.devices_fit(shard, np.array([host]))[0]
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
