"""Latency-bounded dependencies: shards a and b on hosts at most `max_latency_ms` apart (an
unknown latency meets no limit)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from skyshard.placement.constraints.base import NO_INDEX, Build, Family, Tracker, Violation
from skyshard.placement.model import PlacementInput

if TYPE_CHECKING:
    from skyshard.placement.candidates import Candidates
    from skyshard.placement.explain import Situation
    from skyshard.placement.instance import Instance


class _Partners(Tracker):
    """Where each shard's dependency partners are."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.host_of = np.full(inst.n_shards, NO_INDEX, dtype=np.int64)
        ends = np.concatenate([inst.dep_a, inst.dep_b])
        order = np.argsort(ends, kind="stable")
        self.other = np.concatenate([inst.dep_b, inst.dep_a])[order]
        self.limit = np.concatenate([inst.dep_limit, inst.dep_limit])[order]
        # a list: read once per shard, faster than numpy scalars
        self.bounds = np.searchsorted(ends[order], np.arange(inst.n_shards + 1)).tolist()

    def fits(self, shard: int, cols: np.ndarray, hosts: np.ndarray) -> np.ndarray | None:
        ok = None
        for k in range(self.bounds[shard], self.bounds[shard + 1]):
            other = self.host_of[self.other[k]]
            if other != NO_INDEX:
                near = self.inst.latency[hosts, other] <= self.limit[k]
                ok = near if ok is None else ok & near
        return ok

    def update(self, shard: int, col: int, host: int, sign: int) -> None:
        if self.bounds[shard] != self.bounds[shard + 1]:
            self.host_of[shard] = host if sign > 0 else NO_INDEX


class Latency(Family):
    """Rows: for a dependency (a, b) with limit L, hosts whose sets of too-far hosts are equal
    form a class C (with latency measured per provider, one class per provider); one row
    sum(x[a, h] for h in C) + sum(x[b, g] for g too far from C) - slack <= 1 forbids exactly
    the violating pairs with far fewer rows than one per pair."""

    name = "latency"

    def __init__(self) -> None:
        # per limit: every pricing round rebuilds the problem over the same latency matrix
        self._classes: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def _far_classes(self, inst: Instance, limit: float) -> tuple[np.ndarray, np.ndarray]:
        """(too-far row per class (classes, hosts), class of each host (hosts,)); classes in
        the lexicographic order of their rows. Rows are compared as packed bytes: `np.unique`
        with `axis=0` on the boolean matrix sorts column by column, seconds at 6,000 hosts."""
        if limit not in self._classes:
            too_far = inst.latency > limit
            packed = np.ascontiguousarray(np.packbits(too_far, axis=1))
            keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
            _, first, class_of_host = np.unique(keys, return_index=True, return_inverse=True)
            self._classes[limit] = (too_far[first], class_of_host.ravel())
        return self._classes[limit]

    @classmethod
    def bind(
        cls, inp: PlacementInput, shard_pos: Mapping[str, int], host_pos: Mapping[str, int]
    ) -> Family | None:
        return cls() if inp.dependencies else None

    def conflicted_shards(self, inst: Instance) -> np.ndarray:
        conflicted = np.zeros(inst.n_shards, dtype=bool)
        ha, hb = inst.current[inst.dep_a], inst.current[inst.dep_b]
        both = (ha != NO_INDEX) & (hb != NO_INDEX)
        too_far = both & (inst.latency[ha, hb] > inst.dep_limit)
        conflicted[inst.dep_a[too_far]] = conflicted[inst.dep_b[too_far]] = True
        return conflicted

    def rows(self, build: Build) -> None:
        inst, shard, host = build.inst, build.shard, build.host
        block_rows, block_cols = [], []
        n_rows = 0
        for a, b, limit in zip(inst.dep_a, inst.dep_b, inst.dep_limit, strict=True):
            too_far, class_of_host = self._far_classes(inst, float(limit))
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
            build.rows.add(
                n_rows,
                np.concatenate(block_rows),
                np.concatenate(block_cols),
                1.0,
                -np.inf,
                1.0,
                slack=(build.pen.violation, 1.0),
            )

    def tracker(self, inst: Instance, cands: Candidates) -> Tracker:
        return _Partners(inst)

    def check(self, inst: Instance, host_of: np.ndarray) -> list[Violation]:
        out = []
        for a, b, limit in zip(inst.dep_a, inst.dep_b, inst.dep_limit, strict=True):
            ha, hb = host_of[a], host_of[b]
            if NO_INDEX in (ha, hb) or inst.latency[ha, hb] <= limit:
                continue
            out.append(
                Violation(
                    "latency",
                    f"shards {inst.shard_ids[a]},{inst.shard_ids[b]}: {inst.latency[ha, hb]:g} "
                    f"ms between {inst.host_ids[ha]} and {inst.host_ids[hb]} > max_latency_ms "
                    f"{limit:g}",
                )
            )
        return out

    def pre_check(self, inst: Instance, situation: Situation) -> list[str]:
        out = []
        for a, b, limit in zip(inst.dep_a, inst.dep_b, inst.dep_limit, strict=True):
            ha, hb = situation.usable[a], situation.usable[b]
            if not len(ha) or not len(hb):
                continue
            pair = inst.latency[np.ix_(ha, hb)]
            i, j = np.unravel_index(int(np.argmin(pair)), pair.shape)
            if pair[i, j] <= limit:
                continue
            shards = f"shards {inst.shard_ids[a]},{inst.shard_ids[b]}: max_latency_ms {limit:g}"
            if np.isinf(pair[i, j]):
                out.append(f"{shards} but no pair of their usable hosts has a measured latency")
            else:
                out.append(
                    f"{shards} but the closest pair of usable hosts is "
                    f"{inst.host_ids[ha[i]]}-{inst.host_ids[hb[j]]} at {pair[i, j]:g} ms"
                )
        return out
