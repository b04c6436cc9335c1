"""Checks an assignment against every constraint and lists what it violates, by family."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from skyshard.placement.candidates import (
    CAPACITY_TOLERANCE,
    current_host_states,
    passes_hysteresis,
)
from skyshard.placement.devices import NO_DEVICES, devices_needed, host_usage
from skyshard.placement.instance import NO_INDEX, Instance, build_instance
from skyshard.placement.model import RESOURCES, PlacementInput

SHOWN = 8  # shard names listed per message


@dataclass(frozen=True)
class Violation:
    family: str  # capacity, devices, latency, affinity, budget, hysteresis, policy, unplaced
    message: str


def names(ids: list[str], indices: np.ndarray | list[int]) -> str:
    listed = [ids[int(i)] for i in list(indices)[:SHOWN]]
    more = len(indices) - SHOWN
    return ", ".join(listed) + (f" and {more} more" if more > 0 else "")


def _capacity(inst: Instance, host_of: np.ndarray) -> list[Violation]:
    placed = host_of != NO_INDEX
    load = np.zeros_like(inst.capacity)
    np.add.at(load, host_of[placed], inst.demand[placed])
    out = []
    for host, res in zip(*np.nonzero(load > inst.capacity + CAPACITY_TOLERANCE), strict=True):
        shards = np.flatnonzero(host_of == host)
        out.append(
            Violation(
                "capacity",
                f"host {inst.host_ids[host]}: {RESOURCES[res]} {load[host, res]:g} > capacity "
                f"{inst.capacity[host, res]:g} (shards {names(inst.shard_ids, shards)})",
            )
        )
    return out


def _devices(inst: Instance, host_of: np.ndarray) -> list[Violation]:
    taken, counts = host_usage(inst.n_hosts, host_of, inst.gpu_whole, inst.gpu_slots)
    need = devices_needed(taken, counts)
    short = (inst.gpu_devices != NO_DEVICES) & (need > inst.gpu_devices)
    return [
        Violation(
            "devices",
            f"host {inst.host_ids[host]}: shards need {need[host]} GPU devices (whole ones plus "
            f"shared ones per size) but it has {inst.gpu_devices[host]} "
            f"(shards {names(inst.shard_ids, np.flatnonzero(host_of == host))})",
        )
        for host in np.flatnonzero(short)
    ]


def _latency(inst: Instance, host_of: np.ndarray) -> list[Violation]:
    out = []
    for a, b, limit in zip(inst.dep_a, inst.dep_b, inst.dep_limit, strict=True):
        ha, hb = host_of[a], host_of[b]
        if NO_INDEX in (ha, hb) or inst.latency[ha, hb] <= limit:
            continue
        out.append(
            Violation(
                "latency",
                f"shards {inst.shard_ids[a]},{inst.shard_ids[b]}: {inst.latency[ha, hb]:g} ms "
                f"between {inst.host_ids[ha]} and {inst.host_ids[hb]} > max_latency_ms {limit:g}",
            )
        )
    return out


def _affinity(inst: Instance, host_of: np.ndarray) -> list[Violation]:
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


def _moves_and_policy(inst: Instance, host_of: np.ndarray) -> list[Violation]:
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
    moved = np.flatnonzero(inst.has_current & (host_of != inst.current))
    if inst.budget.max_moves is not None and len(moved) > inst.budget.max_moves:
        out.append(Violation("budget", f"{len(moved)} moves > max_moves {inst.budget.max_moves}"))
    return out


def violations_of(inst: Instance, host_of: np.ndarray) -> list[Violation]:
    """`host_of` is (shards,) host index, NO_INDEX for unplaced."""
    return [
        *_moves_and_policy(inst, host_of),
        *_capacity(inst, host_of),
        *_devices(inst, host_of),
        *_latency(inst, host_of),
        *_affinity(inst, host_of),
    ]


def check_assignment(inp: PlacementInput, assignment: Mapping[str, str]) -> list[Violation]:
    """Every constraint the shard -> host assignment violates (empty when it is feasible)."""
    inst = build_instance(inp)
    host_pos = {h: i for i, h in enumerate(inst.host_ids)}
    host_of = np.array(
        [host_pos.get(assignment.get(s, ""), NO_INDEX) for s in inst.shard_ids], dtype=np.int64
    )
    return violations_of(inst, host_of)
