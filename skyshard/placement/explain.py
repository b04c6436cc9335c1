"""Pre-checks: what cheap arithmetic proves the plan cannot fix, before any solver runs.

They take milliseconds even at 8,000 shards x 1,500 hosts: a shard no allowed host can hold
(with the resource it lacks), a sky short of a resource overall, a dependency no pair of usable
hosts meets, a group no provider or not enough hosts can take, and a move budget below the moves
that relief needs. The elastic solver then plans the best subset; these verdicts are what the
plan reports as the reasons, and all it reports when time runs out.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from skyshard.placement.candidates import (
    CurrentHost,
    current_host_states,
    eligible_candidates,
    fits_alone,
    overloaded_hosts,
)
from skyshard.placement.check import names
from skyshard.placement.devices import NO_DEVICES
from skyshard.placement.instance import Instance
from skyshard.placement.model import RESOURCES


def unplaceable(inst: Instance) -> dict[int, str]:
    """Shards no allowed host can hold on its own, with why."""
    out = {}
    usable = inst.cand_allowed & fits_alone(inst, inst.cand_shard, inst.cand_host)
    has_usable = np.bincount(inst.cand_shard[usable], minlength=inst.n_shards) > 0
    for shard in np.flatnonzero(~has_usable):
        rows = np.flatnonzero(inst.cand_shard == shard)
        allowed = rows[inst.cand_allowed[rows]]
        if not len(rows):
            out[int(shard)] = "no candidate host was scored"
        elif not len(allowed):
            reasons = Counter(str(inst.cand_blocked_by[r] or "not allowed") for r in rows)
            listed = ", ".join(f"{why}: {n} hosts" for why, n in sorted(reasons.items()))
            out[int(shard)] = f"every candidate host is blocked ({listed})"
        else:
            out[int(shard)] = _why_nothing_fits(inst, shard, inst.cand_host[allowed])
    return out


def _why_nothing_fits(inst: Instance, shard: int, hosts: np.ndarray) -> str:
    demand, capacity = inst.demand[shard], inst.capacity[hosts]
    short = []
    for res, name in enumerate(RESOURCES):
        best = int(np.argmax(capacity[:, res]))
        if capacity[best, res] < demand[res]:
            short.append(
                f"no allowed host has {demand[res]:g} {name} free at the forecast upper bound "
                f"(best: {inst.host_ids[hosts[best]]} with {capacity[best, res]:g})"
            )
    devices = inst.gpu_devices[hosts]
    if inst.gpu_whole[shard] > 0 and (devices != NO_DEVICES).any():
        best = int(np.argmax(devices))
        if devices[best] < inst.gpu_whole[shard]:
            short.append(
                f"needs {inst.gpu_whole[shard]} whole GPU devices; best host "
                f"{inst.host_ids[hosts[best]]} has {devices[best]}"
            )
    if short:
        return "; ".join(short)
    shortfall = np.maximum(demand - capacity, 0) / np.maximum(demand, 1e-9)
    closest = int(np.argmin(shortfall.sum(axis=1)))
    lacking = ", ".join(
        f"{RESOURCES[r]} by {demand[r] - capacity[closest, r]:g}"
        for r in np.flatnonzero(shortfall[closest] > 0)
    )
    return (
        f"no allowed host fits all its resources at once (closest: "
        f"{inst.host_ids[hosts[closest]]}, short of {lacking})"
    )


def _usable_hosts(inst: Instance) -> list[np.ndarray]:
    usable = eligible_candidates(inst, hysteresis=False, affinity=False)
    bounds = np.searchsorted(usable.shard, np.arange(inst.n_shards + 1))
    return [usable.host[bounds[s] : bounds[s + 1]] for s in range(inst.n_shards)]


def _dependency_conflicts(inst: Instance, usable: list[np.ndarray]) -> list[str]:
    out = []
    for a, b, limit in zip(inst.dep_a, inst.dep_b, inst.dep_limit, strict=True):
        ha, hb = usable[a], usable[b]
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


def _group_conflicts(inst: Instance, usable: list[np.ndarray]) -> list[str]:
    out = []
    for group, name in enumerate(inst.affinity_names):
        members = np.flatnonzero(inst.affinity == group)
        common = set.intersection(*(set(inst.host_provider[usable[s]].tolist()) for s in members))
        if len(members) > 1 and not common:
            out.append(
                f"affinity group {name} (shards {names(inst.shard_ids, members)}): no provider "
                f"has a usable host for every member"
            )
    for group, name in enumerate(inst.anti_affinity_names):
        members = np.flatnonzero(inst.anti_affinity == group)
        hosts = np.unique(np.concatenate([usable[s] for s in members]))
        if len(members) > len(hosts):
            out.append(
                f"anti-affinity group {name}: {len(members)} shards "
                f"({names(inst.shard_ids, members)}) but only {len(hosts)} usable hosts "
                f"({names(inst.host_ids, hosts)})"
            )
    return out


def _must_move(inst: Instance) -> str:
    state = current_host_states(inst)
    blocked = np.flatnonzero((state == CurrentHost.BLOCKED) | (state == CurrentHost.GONE))
    overloaded = np.flatnonzero(overloaded_hosts(inst))
    parts = []
    if len(blocked):
        parts.append(
            f"shards whose current host is gone or blocked: {names(inst.shard_ids, blocked)}"
        )
    if len(overloaded):
        parts.append(f"hosts over capacity now: {names(inst.host_ids, overloaded)}")
    return "; ".join(parts)


def _sky_short(inst: Instance) -> list[str]:
    need, have = inst.demand.sum(axis=0), inst.capacity.sum(axis=0)
    return [
        f"capacity: the shards need {need[r]:g} {name} at the forecast upper bound but all "
        f"hosts together have {have[r]:g}"
        for r, name in enumerate(RESOURCES)
        if need[r] > have[r] + 1e-9
    ]


def _budget_short(inst: Instance) -> list[str]:
    """Relief needs a move per shard on a gone or blocked host and one per overloaded host."""
    if inst.budget.max_moves is None:
        return []
    state = current_host_states(inst)
    forced = int(((state == CurrentHost.BLOCKED) | (state == CurrentHost.GONE)).sum())
    needed = forced + int(overloaded_hosts(inst).sum())
    if needed <= inst.budget.max_moves:
        return []
    return [
        f"budget: at least {needed} moves are needed but max_moves is {inst.budget.max_moves} "
        f"({_must_move(inst)}); the plan spends the budget where it relieves most"
    ]


def pre_checks(inst: Instance, stuck: dict[int, str]) -> tuple[str, ...]:
    """What the plan cannot fix, proven by cheap checks (each line names what and why)."""
    usable = _usable_hosts(inst)
    return tuple(
        [f"shard {inst.shard_ids[s]}: {why}" for s, why in sorted(stuck.items())]
        + _sky_short(inst)
        + _dependency_conflicts(inst, usable)
        + _group_conflicts(inst, usable)
        + _budget_short(inst)
    )
