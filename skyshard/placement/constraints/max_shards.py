"""At most N shards per host, whatever their size: bounds what one host failure takes down and
how many shard processes a host runs. Set through `PlacementInput.rules`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from skyshard.placement.constraints.base import (
    NO_INDEX,
    Build,
    Family,
    Tracker,
    Violation,
    names,
)
from skyshard.placement.model import PlacementInput

if TYPE_CHECKING:
    from skyshard.placement.candidates import Candidates
    from skyshard.placement.explain import Situation
    from skyshard.placement.instance import Instance


@dataclass(frozen=True)
class MaxShardsPerHost:
    """At most `limit` shards on each of `hosts` (empty: every host). Of several rules naming
    a host, the lowest limit holds."""

    limit: int
    hosts: tuple[str, ...] = ()


def _shards_on(inst: Instance, host_of: np.ndarray) -> np.ndarray:
    return np.bincount(host_of[host_of != NO_INDEX], minlength=inst.n_hosts)


class _Counts(Tracker):
    def __init__(self, inst: Instance, limit: np.ndarray) -> None:
        self.limit = limit
        self.count = np.zeros(inst.n_hosts, dtype=np.int64)

    def fits(self, shard: int, cols: np.ndarray, hosts: np.ndarray) -> np.ndarray:
        return self.count[hosts] < self.limit[hosts]

    def update(self, shard: int, col: int, host: int, sign: int) -> None:
        self.count[host] += sign


class MaxShards(Family):
    """Rows: per limited host with more candidate columns than its limit, sum of x - slack <=
    limit (slack priced per extra shard as a broken rule)."""

    name = "max_shards"
    capacity_like = True
    in_greedy = True
    rule_type = MaxShardsPerHost

    def __init__(self, limit: np.ndarray) -> None:
        self.limit = limit  # (hosts,) float, inf where no rule applies

    @classmethod
    def bind(
        cls, inp: PlacementInput, shard_pos: Mapping[str, int], host_pos: Mapping[str, int]
    ) -> Family | None:
        rules = [(i, r) for i, r in enumerate(inp.rules) if isinstance(r, MaxShardsPerHost)]
        if not rules:
            return None
        limit = np.full(len(host_pos), np.inf)
        for i, rule in rules:
            if isinstance(rule.limit, bool) or not isinstance(rule.limit, int) or rule.limit < 0:
                raise ValueError(f"rules[{i}]: limit = {rule.limit!r} must be a whole number >= 0")
            unknown = [h for h in rule.hosts if h not in host_pos]
            if unknown:
                raise ValueError(f"rules[{i}]: hosts: unknown host {unknown[0]!r}")
            at = [host_pos[h] for h in rule.hosts] if rule.hosts else slice(None)
            limit[at] = np.minimum(limit[at], rule.limit)
        return cls(limit)

    def fits_alone(self, inst: Instance, shard: np.ndarray, host: np.ndarray) -> np.ndarray:
        return self.limit[host] >= 1

    def overloaded_hosts(self, inst: Instance) -> np.ndarray:
        return _shards_on(inst, inst.current) > self.limit

    def rows(self, build: Build) -> None:
        columns_on = np.bincount(build.host, minlength=build.inst.n_hosts)
        hosts = np.flatnonzero(columns_on > self.limit)
        on_row = np.full(build.inst.n_hosts, NO_INDEX)
        on_row[hosts] = np.arange(len(hosts))
        cols = np.flatnonzero(on_row[build.host] != NO_INDEX)
        build.rows.add(
            len(hosts),
            on_row[build.host[cols]],
            cols,
            1.0,
            -np.inf,
            self.limit[hosts],
            slack=(build.pen.violation, columns_on[hosts] - self.limit[hosts]),
        )

    def tracker(self, inst: Instance, cands: Candidates) -> Tracker:
        return _Counts(inst, self.limit)

    def check(self, inst: Instance, host_of: np.ndarray) -> list[Violation]:
        count = _shards_on(inst, host_of)
        return [
            Violation(
                "max_shards",
                f"host {inst.host_ids[host]}: {count[host]} shards > max_shards "
                f"{self.limit[host]:g} "
                f"(shards {names(inst.shard_ids, np.flatnonzero(host_of == host))})",
            )
            for host in np.flatnonzero(count > self.limit)
        ]

    def why_alone(self, inst: Instance, shard: int, hosts: np.ndarray) -> list[str]:
        if (self.limit[hosts] >= 1).any():
            return []
        return [f"every allowed host has max_shards 0 ({names(inst.host_ids, hosts)})"]

    def pre_check(self, inst: Instance, situation: Situation) -> list[str]:
        room = self.limit.sum()
        if room >= inst.n_shards:
            return []
        return [f"max_shards: {inst.n_shards} shards but the hosts' max_shards add up to {room:g}"]
