"""Capacity per resource: the shards on a host need at most what it supplies of each resource
(at the forecast upper bound, net of reserved capacity)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from skyshard.placement.constraints.base import NO_INDEX, Build, Family, Tracker, Violation, names
from skyshard.placement.model import RESOURCES

if TYPE_CHECKING:
    from skyshard.placement.candidates import Candidates
    from skyshard.placement.explain import Situation
    from skyshard.placement.instance import Instance

# Capacity comparisons tolerate float noise from summing many small demands.
CAPACITY_TOLERANCE = 1e-9


def host_load(inst: Instance, host_of: np.ndarray) -> np.ndarray:
    """(hosts, resources) demand of the shards placed at `host_of`."""
    placed = host_of != NO_INDEX
    load = np.zeros_like(inst.capacity)
    np.add.at(load, host_of[placed], inst.demand[placed])
    return load


class _Load(Tracker):
    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.load = np.zeros_like(inst.capacity)

    def fits(self, shard: int, cols: np.ndarray, hosts: np.ndarray) -> np.ndarray:
        inst = self.inst
        return (
            self.load[hosts] + inst.demand[shard] <= inst.capacity[hosts] + CAPACITY_TOLERANCE
        ).all(axis=1)

    def update(self, shard: int, col: int, host: int, sign: int) -> None:
        self.load[host] += sign * self.inst.demand[shard]

    def short(self, shard: int, host: int) -> np.ndarray:
        inst = self.inst
        return self.load[host] + inst.demand[shard] - inst.capacity[host] > CAPACITY_TOLERANCE


class Capacity(Family):
    """Rows: per host and resource, sum of demand - slack <= capacity (slack priced per unit)."""

    name = "capacity"
    capacity_like = True
    in_greedy = True

    def fits_alone(self, inst: Instance, shard: np.ndarray, host: np.ndarray) -> np.ndarray:
        return (inst.demand[shard] <= inst.capacity[host] + CAPACITY_TOLERANCE).all(axis=1)

    def overloaded_hosts(self, inst: Instance) -> np.ndarray:
        return (host_load(inst, inst.current) > inst.capacity + CAPACITY_TOLERANCE).any(axis=1)

    def rows(self, build: Build) -> np.ndarray:
        inst, pen = build.inst, build.pen
        n_res = inst.capacity.shape[1]
        col, res = np.nonzero(inst.demand[build.shard] > 0)
        return build.rows.add(
            inst.n_hosts * n_res,
            build.host[col] * n_res + res,
            col,
            inst.demand[build.shard[col], res],
            -np.inf,
            inst.capacity.ravel(),
            slack=(
                np.tile(pen.per_unit, inst.n_hosts),
                np.tile(inst.demand.sum(axis=0), inst.n_hosts),
            ),
        ).reshape(inst.n_hosts, n_res)

    def dual_term(
        self,
        inst: Instance,
        row_map: np.ndarray,
        shard: np.ndarray,
        host: np.ndarray,
        dual: np.ndarray,
    ) -> np.ndarray:
        return (inst.demand[shard] * dual[row_map[host]]).sum(axis=1)

    def tracker(self, inst: Instance, cands: Candidates) -> Tracker:
        return _Load(inst)

    def check(self, inst: Instance, host_of: np.ndarray) -> list[Violation]:
        load = host_load(inst, host_of)
        out = []
        for host, res in zip(*np.nonzero(load > inst.capacity + CAPACITY_TOLERANCE), strict=True):
            shards = np.flatnonzero(host_of == host)
            out.append(
                Violation(
                    "capacity",
                    f"host {inst.host_ids[host]}: {RESOURCES[res]} {load[host, res]:g} > "
                    f"capacity {inst.capacity[host, res]:g} "
                    f"(shards {names(inst.shard_ids, shards)})",
                )
            )
        return out

    def why_alone(self, inst: Instance, shard: int, hosts: np.ndarray) -> list[str]:
        demand, capacity = inst.demand[shard], inst.capacity[hosts]
        short = []
        for res, name in enumerate(RESOURCES):
            best = int(np.argmax(capacity[:, res]))
            if capacity[best, res] < demand[res]:
                short.append(
                    f"no allowed host has {demand[res]:g} {name} free at the forecast upper "
                    f"bound (best: {inst.host_ids[hosts[best]]} with {capacity[best, res]:g})"
                )
        return short

    def pre_check(self, inst: Instance, situation: Situation) -> list[str]:
        need, have = inst.demand.sum(axis=0), inst.capacity.sum(axis=0)
        return [
            f"capacity: the shards need {need[r]:g} {name} at the forecast upper bound but all "
            f"hosts together have {have[r]:g}"
            for r, name in enumerate(RESOURCES)
            if need[r] > have[r] + 1e-9
        ]
