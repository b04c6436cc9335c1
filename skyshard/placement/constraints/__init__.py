"""Placement constraint families, each defined once (`base.Family`): its MILP rows, its test
for one more shard on a host (heuristic and greedy), its check of a finished plan and its
reasons for the explanation. `FAMILIES` is the registry every consumer iterates, in this order
(the order of the MILP's rows and of the checker's and pre-checks' lines)."""

from __future__ import annotations

from skyshard.placement.constraints.base import Family
from skyshard.placement.constraints.budget import MoveBudget
from skyshard.placement.constraints.capacity import Capacity
from skyshard.placement.constraints.gpu_devices import GpuDevices
from skyshard.placement.constraints.groups import Affinity, AntiAffinity
from skyshard.placement.constraints.latency import Latency
from skyshard.placement.constraints.max_shards import MaxShards

FAMILIES: tuple[type[Family], ...] = (
    Capacity,
    GpuDevices,
    AntiAffinity,
    Affinity,
    Latency,
    MoveBudget,
    MaxShards,
)
