"""Shard groups: anti-affinity (at most one member per host) and affinity (all members on one
provider: a whole group seldom fits one host, and provider-local traffic is what matters)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from skyshard.placement.constraints.base import NO_INDEX, Build, Family, Tracker, Violation, names
from skyshard.placement.model import PlacementInput

if TYPE_CHECKING:
    from skyshard.placement.candidates import Candidates
    from skyshard.placement.explain import Situation
    from skyshard.placement.instance import Instance


class _HostsTaken(Tracker):
    def __init__(self, inst: Instance) -> None:
        self.group_of = inst.anti_affinity.tolist()  # a list: read once per shard update
        self.hosts: dict[int, Counter[int]] = {}

    def fits(self, shard: int, cols: np.ndarray, hosts: np.ndarray) -> np.ndarray | None:
        taken = [h for h, n in self.hosts.get(self.group_of[shard], {}).items() if n]
        return ~np.isin(hosts, taken) if taken else None

    def update(self, shard: int, col: int, host: int, sign: int) -> None:
        group = self.group_of[shard]
        if group != NO_INDEX:
            self.hosts.setdefault(group, Counter())[host] += sign


class AntiAffinity(Family):
    """Rows: per group and host with two or more candidate members, members - slack <= 1."""

    name = "affinity"
    in_greedy = True

    @classmethod
    def bind(
        cls, inp: PlacementInput, shard_pos: Mapping[str, int], host_pos: Mapping[str, int]
    ) -> Family | None:
        return cls() if any(s.anti_affinity_group is not None for s in inp.shards) else None

    def conflicted_shards(self, inst: Instance) -> np.ndarray:
        conflicted = np.zeros(inst.n_shards, dtype=bool)
        placed = np.flatnonzero((inst.current != NO_INDEX) & (inst.anti_affinity != NO_INDEX))
        keys = inst.anti_affinity[placed] * inst.n_hosts + inst.current[placed]
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        conflicted[placed[counts[inverse] > 1]] = True
        return conflicted

    def rows(self, build: Build) -> None:
        group = build.inst.anti_affinity[build.shard]
        cols = np.flatnonzero(group != NO_INDEX)
        keys = group[cols] * build.inst.n_hosts + build.host[cols]
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        shared = counts[inverse] >= 2
        row_of_key = np.cumsum(counts >= 2) - 1
        build.rows.add(
            int((counts >= 2).sum()),
            row_of_key[inverse[shared]],
            cols[shared],
            1.0,
            -np.inf,
            1.0,
            slack=(build.pen.violation, counts[counts >= 2] - 1),
        )

    def tracker(self, inst: Instance, cands: Candidates) -> Tracker:
        return _HostsTaken(inst)

    def check(self, inst: Instance, host_of: np.ndarray) -> list[Violation]:
        out = []
        for group, name in enumerate(inst.anti_affinity_names):
            members = np.flatnonzero((inst.anti_affinity == group) & (host_of != NO_INDEX))
            hosts, counts = np.unique(host_of[members], return_counts=True)
            for host in hosts[counts > 1]:
                out.append(
                    Violation(
                        "affinity",
                        f"anti-affinity group {name}: shards "
                        f"{names(inst.shard_ids, members[host_of[members] == host])} share host "
                        f"{inst.host_ids[host]}",
                    )
                )
        return out

    def pre_check(self, inst: Instance, situation: Situation) -> list[str]:
        out = []
        for group, name in enumerate(inst.anti_affinity_names):
            members = np.flatnonzero(inst.anti_affinity == group)
            hosts = np.unique(np.concatenate([situation.usable[s] for s in members]))
            if len(members) > len(hosts):
                out.append(
                    f"anti-affinity group {name}: {len(members)} shards "
                    f"({names(inst.shard_ids, members)}) but only {len(hosts)} usable hosts "
                    f"({names(inst.host_ids, hosts)})"
                )
        return out


class _GroupProvider(Tracker):
    def __init__(self, inst: Instance) -> None:
        self.group_of = inst.affinity.tolist()  # lists: read once per shard update
        self.provider_of = inst.host_provider.tolist()
        self.host_provider = inst.host_provider
        self.members = [0] * len(inst.affinity_names)
        self.provider = [NO_INDEX] * len(inst.affinity_names)

    def fits(self, shard: int, cols: np.ndarray, hosts: np.ndarray) -> np.ndarray | None:
        group = self.group_of[shard]
        if group == NO_INDEX or not self.members[group]:
            return None
        return self.host_provider[hosts] == self.provider[group]

    def update(self, shard: int, col: int, host: int, sign: int) -> None:
        group = self.group_of[shard]
        if group != NO_INDEX:
            self.members[group] += sign
            self.provider[group] = self.provider_of[host]


class Affinity(Family):
    """Rows: x[s, h of p] <= y[g, p] for every member s of group g (y a helper per group and
    provider), and sum_p y[g, p] - slack <= 1. The member rows have a -1 on y, so they enter
    pricing (`dual_term`)."""

    name = "affinity"

    @classmethod
    def bind(
        cls, inp: PlacementInput, shard_pos: Mapping[str, int], host_pos: Mapping[str, int]
    ) -> Family | None:
        return cls() if any(s.affinity_group is not None for s in inp.shards) else None

    def prune(self, inst: Instance, keep: np.ndarray) -> np.ndarray:
        """Drop hosts whose provider not every group member can use."""
        grouped = inst.affinity != NO_INDEX
        n_groups, n_providers = len(inst.affinity_names), len(inst.provider_ids)
        usable = np.zeros((inst.n_shards, n_providers), dtype=bool)
        usable[inst.cand_shard[keep], inst.host_provider[inst.cand_host[keep]]] = True
        members_usable = np.zeros((n_groups, n_providers), dtype=np.int64)
        np.add.at(members_usable, inst.affinity[grouped], usable[grouped])
        group_size = np.bincount(inst.affinity[grouped], minlength=n_groups)
        common = members_usable == group_size[:, None]
        group = inst.affinity[inst.cand_shard]
        provider = inst.host_provider[inst.cand_host]
        return keep & ((group == NO_INDEX) | common[np.maximum(group, 0), provider])

    def conflicted_shards(self, inst: Instance) -> np.ndarray:
        conflicted = np.zeros(inst.n_shards, dtype=bool)
        placed = np.flatnonzero((inst.current != NO_INDEX) & (inst.affinity != NO_INDEX))
        group, provider = inst.affinity[placed], inst.host_provider[inst.current[placed]]
        first_provider = np.full(len(inst.affinity_names), NO_INDEX)
        first_provider[group[::-1]] = provider[::-1]
        split = np.zeros(len(inst.affinity_names), dtype=bool)
        split[group[provider != first_provider[group]]] = True
        conflicted[placed[split[group]]] = True
        return conflicted

    def rows(self, build: Build) -> np.ndarray:
        """Returns the (shards, providers) map of member rows."""
        inst, cands, shard, host, rows = (
            build.inst,
            build.cands,
            build.shard,
            build.host,
            build.rows,
        )
        row_map = np.full((inst.n_shards, len(inst.provider_ids)), NO_INDEX, dtype=np.int64)
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
        groups, group_row, providers = np.unique(
            pairs[:, 0], return_inverse=True, return_counts=True
        )
        rows.add(
            len(groups),
            group_row.ravel(),
            y_cols,
            1.0,
            -np.inf,
            1.0,
            slack=(build.pen.violation, providers - 1),
        )
        return row_map

    def dual_term(
        self,
        inst: Instance,
        row_map: np.ndarray,
        shard: np.ndarray,
        host: np.ndarray,
        dual: np.ndarray,
    ) -> np.ndarray:
        row = row_map[shard, inst.host_provider[host]]
        return np.where(row >= 0, dual[np.maximum(row, 0)], 0.0)

    def tracker(self, inst: Instance, cands: Candidates) -> Tracker:
        return _GroupProvider(inst)

    def check(self, inst: Instance, host_of: np.ndarray) -> list[Violation]:
        out = []
        for group, name in enumerate(inst.affinity_names):
            members = np.flatnonzero((inst.affinity == group) & (host_of != NO_INDEX))
            providers = sorted({inst.provider_ids[inst.host_provider[host_of[s]]] for s in members})
            if len(providers) > 1:
                out.append(
                    Violation(
                        "affinity",
                        f"affinity group {name} (shards {names(inst.shard_ids, members)}) "
                        f"spans providers {', '.join(providers)}",
                    )
                )
        return out

    def pre_check(self, inst: Instance, situation: Situation) -> list[str]:
        out = []
        for group, name in enumerate(inst.affinity_names):
            members = np.flatnonzero(inst.affinity == group)
            common = set.intersection(
                *(set(inst.host_provider[situation.usable[s]].tolist()) for s in members)
            )
            if len(members) > 1 and not common:
                out.append(
                    f"affinity group {name} (shards {names(inst.shard_ids, members)}): no "
                    f"provider has a usable host for every member"
                )
        return out
