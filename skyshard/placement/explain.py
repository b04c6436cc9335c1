"""Pre-checks: what cheap arithmetic proves the plan cannot fix, before any solver runs.

They take milliseconds even at 8,000 shards x 1,500 hosts: a shard no allowed host can hold
(with the resource it lacks), a sky short of a resource overall, a dependency no pair of usable
hosts meets, a group no provider or not enough hosts can take, and a move budget below the moves
that relief needs: each constraint family's `why_alone` and `pre_check`. The elastic solver
then plans the best subset; these verdicts are what the plan reports as the reasons, and all it
reports when time runs out.
"""

from __future__ import annotations

from collections import Counter
from functools import cached_property

import numpy as np

from skyshard.placement.candidates import (
    CurrentHost,
    current_host_states,
    eligible_candidates,
    overloaded_hosts,
)
from skyshard.placement.instance import Instance
from skyshard.placement.model import RESOURCES


class Situation:
    """What the families' pre-checks share, each part computed on first use."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst

    @cached_property
    def usable(self) -> list[np.ndarray]:
        """Per shard, the hosts it could use on its own (hysteresis and prunes left out)."""
        usable = eligible_candidates(self.inst, hysteresis=False, prune=False)
        bounds = np.searchsorted(usable.shard, np.arange(self.inst.n_shards + 1))
        return [usable.host[bounds[s] : bounds[s + 1]] for s in range(self.inst.n_shards)]

    @cached_property
    def must_move(self) -> np.ndarray:
        """(shards,) whose current host is gone or blocked."""
        state = current_host_states(self.inst)
        return (state == CurrentHost.BLOCKED) | (state == CurrentHost.GONE)

    @cached_property
    def overloaded(self) -> np.ndarray:
        """(hosts,) over a capacity-like limit now."""
        return overloaded_hosts(self.inst)


def unplaceable(inst: Instance) -> dict[int, str]:
    """Shards no allowed host can hold on its own, with why."""
    out = {}
    usable = inst.cand_allowed & inst.cand_fits_alone
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
    short = [why for family in inst.constraints for why in family.why_alone(inst, shard, hosts)]
    if short:
        return "; ".join(short)
    # no single limit explains it: the resources do not all fit one host at once
    demand, capacity = inst.demand[shard], inst.capacity[hosts]
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


def pre_checks(inst: Instance, stuck: dict[int, str], *, families: bool = True) -> tuple[str, ...]:
    """What the plan cannot fix, proven by cheap checks (each line names what and why);
    without `families` only the shards no host can hold (when the time is already spent)."""
    situation = Situation(inst)
    lines = [f"shard {inst.shard_ids[s]}: {why}" for s, why in sorted(stuck.items())]
    if families:
        lines += [line for family in inst.constraints for line in family.pre_check(inst, situation)]
    return tuple(lines)
