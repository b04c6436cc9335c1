"""Checks an assignment against every constraint and lists what it violates, by family: the
unplaced shards, policy and hysteresis here, then each constraint family's own check."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from skyshard.placement.candidates import current_host_states, passes_hysteresis
from skyshard.placement.constraints.base import NO_INDEX, Violation, names
from skyshard.placement.instance import Instance, build_instance
from skyshard.placement.model import PlacementInput


def _placement_and_policy(inst: Instance, host_of: np.ndarray) -> list[Violation]:
    out = []
    unplaced = np.flatnonzero(host_of == NO_INDEX)
    if len(unplaced):
        out.append(
            Violation("unplaced", f"shards without a host: {names(inst.shard_ids, unplaced)}")
        )
    placed = np.flatnonzero(host_of != NO_INDEX)
    keys = placed * inst.n_hosts + host_of[placed]
    pos = np.minimum(np.searchsorted(inst.cand_key, keys), len(inst.cand_key) - 1)
    scored = inst.cand_key[pos] == keys if len(inst.cand_key) else np.zeros(len(keys), bool)
    allowed = scored & inst.cand_allowed[pos]
    if (~allowed).any():
        out.append(
            Violation(
                "policy",
                f"shards on hosts not allowed for them: {names(inst.shard_ids, placed[~allowed])}",
            )
        )
    passes = passes_hysteresis(inst, current_host_states(inst))
    held_back = placed[allowed & ~passes[pos]] if len(passes) else placed[:0]
    if len(held_back):
        out.append(
            Violation(
                "hysteresis",
                f"shards moved for less than the minimum saving or within the move cooldown: "
                f"{names(inst.shard_ids, held_back)}",
            )
        )
    return out


def violations_of(inst: Instance, host_of: np.ndarray) -> list[Violation]:
    """`host_of` is (shards,) host index, NO_INDEX for unplaced."""
    found = _placement_and_policy(inst, host_of)
    for family in inst.constraints:
        found += family.check(inst, host_of)
    return found


def check_assignment(inp: PlacementInput, assignment: Mapping[str, str]) -> list[Violation]:
    """Every constraint the shard -> host assignment violates (empty when it is feasible)."""
    inst = build_instance(inp)
    host_pos = {h: i for i, h in enumerate(inst.host_ids)}
    host_of = np.array(
        [host_pos.get(assignment.get(s, ""), NO_INDEX) for s in inst.shard_ids], dtype=np.int64
    )
    return violations_of(inst, host_of)
