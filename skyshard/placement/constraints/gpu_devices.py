"""GPU devices: on a host that declares its devices, the shards' GPUs pack onto them (the rule's
arithmetic is `skyshard/placement/devices.py`). The tests check every plan with an exact packer
that shares no code with this family (`tests/placement/packing.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from skyshard.placement.constraints.base import Build, Family, Tracker, Violation, names
from skyshard.placement.devices import (
    MAX_SLOTS,
    NO_DEVICES,
    devices_needed,
    extra_devices,
    fits_devices,
    host_usage,
)
from skyshard.placement.model import RESOURCES, PlacementInput

if TYPE_CHECKING:
    from skyshard.placement.candidates import Candidates
    from skyshard.placement.instance import Instance

GPU = RESOURCES.index("gpu")


def _short_hosts(inst: Instance, host_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(devices needed (hosts,), hosts short of devices (hosts,))."""
    taken, counts = host_usage(inst.n_hosts, host_of, inst.gpu_whole, inst.gpu_slots)
    need = devices_needed(taken, counts)
    return need, (inst.gpu_devices != NO_DEVICES) & (need > inst.gpu_devices)


class _Packing(Tracker):
    def __init__(self, inst: Instance) -> None:
        self.devices = inst.gpu_devices
        # lists: read once per shard update, faster than numpy scalars
        self.whole = inst.gpu_whole.tolist()
        self.slots = inst.gpu_slots.tolist()
        self.has_devices = (inst.gpu_devices != NO_DEVICES).tolist()
        self.has_gpu = (inst.demand[:, GPU] > 0).tolist()
        self.slot_counts = np.zeros((inst.n_hosts, MAX_SLOTS + 1), dtype=np.int64)
        self.used = np.zeros(inst.n_hosts, dtype=np.int64)

    def fits(self, shard: int, cols: np.ndarray, hosts: np.ndarray) -> np.ndarray | None:
        whole, slots = self.whole[shard], self.slots[shard]
        if whole == 0 and slots == 0:
            return None
        devices = self.devices[hosts]
        extra = extra_devices(self.slot_counts[hosts], np.full(len(hosts), whole), slots)
        return (devices == NO_DEVICES) | (self.used[hosts] + extra <= devices)

    def update(self, shard: int, col: int, host: int, sign: int) -> None:
        if not (self.has_devices[host] and self.has_gpu[shard]):
            return
        k = self.slots[shard]
        if k == 0:
            self.used[host] += sign * self.whole[shard]
            return
        # class-k shards take ceil(n / k) devices: the (n+1)-th opens one when k divides n
        n = int(self.slot_counts[host, k]) + min(sign, 0)
        self.slot_counts[host, k] += sign
        self.used[host] += sign * (n % k == 0)

    def short(self, shard: int, host: int) -> np.ndarray | None:
        fits = self.fits(shard, np.zeros(1, dtype=np.int64), np.array([host]))
        if fits is None or fits[0]:
            return None
        lacking = np.zeros(len(RESOURCES), dtype=bool)
        lacking[GPU] = True
        return lacking


class GpuDevices(Family):
    """Rows per host with devices: class-k shards <= k * d[host, k] (integer helpers d), and
    whole devices + sum_k d - slack <= devices (slack priced per GPU)."""

    name = "devices"
    capacity_like = True
    in_greedy = True

    @classmethod
    def bind(
        cls, inp: PlacementInput, shard_pos: Mapping[str, int], host_pos: Mapping[str, int]
    ) -> Family | None:
        return cls() if any(h.gpu_devices is not None for h in inp.hosts) else None

    def fits_alone(self, inst: Instance, shard: np.ndarray, host: np.ndarray) -> np.ndarray:
        return fits_devices(inst.gpu_devices[host], inst.gpu_whole[shard], inst.gpu_slots[shard])

    def overloaded_hosts(self, inst: Instance) -> np.ndarray:
        return _short_hosts(inst, inst.current)[1]

    def rows(self, build: Build) -> None:
        inst, shard, host, rows = build.inst, build.shard, build.host, build.rows
        on_devices = (inst.gpu_devices[host] != NO_DEVICES) & (
            (inst.gpu_whole[shard] > 0) | (inst.gpu_slots[shard] > 0)
        )
        if not on_devices.any():
            return
        cols = np.flatnonzero(on_devices)
        slots = inst.gpu_slots[shard[cols]]
        sharing = cols[slots > 0]
        keys, key_row = np.unique(
            host[sharing] * (MAX_SLOTS + 1) + inst.gpu_slots[shard[sharing]], return_inverse=True
        )
        key_host, key_k = keys // (MAX_SLOTS + 1), keys % (MAX_SLOTS + 1)
        d_cols = rows.helpers(len(keys), inst.gpu_devices[key_host], integer=True)
        rows.add(
            len(keys),
            np.concatenate([key_row.ravel(), np.arange(len(keys))]),
            np.concatenate([sharing, d_cols]),
            np.concatenate([np.ones(len(sharing)), -key_k.astype(float)]),
            -np.inf,
            0.0,
        )
        hosts, host_row = np.unique(host[cols], return_inverse=True)
        whole = cols[inst.gpu_whole[shard[cols]] > 0]
        whole_row = np.searchsorted(hosts, host[whole])
        d_row = np.searchsorted(hosts, key_host)
        rows.add(
            len(hosts),
            np.concatenate([whole_row, d_row]),
            np.concatenate([whole, d_cols]),
            np.concatenate([inst.gpu_whole[shard[whole]].astype(float), np.ones(len(d_cols))]),
            -np.inf,
            inst.gpu_devices[hosts].astype(float),
            slack=(
                build.pen.per_unit[GPU],
                np.bincount(host_row.ravel(), weights=inst.gpu_whole[shard[cols]] + 1.0),
            ),
        )

    def tracker(self, inst: Instance, cands: Candidates) -> Tracker:
        return _Packing(inst)

    def check(self, inst: Instance, host_of: np.ndarray) -> list[Violation]:
        need, short = _short_hosts(inst, host_of)
        return [
            Violation(
                "devices",
                f"host {inst.host_ids[host]}: shards need {need[host]} GPU devices (whole ones "
                f"plus shared ones per size) but it has {inst.gpu_devices[host]} "
                f"(shards {names(inst.shard_ids, np.flatnonzero(host_of == host))})",
            )
            for host in np.flatnonzero(short)
        ]

    def why_alone(self, inst: Instance, shard: int, hosts: np.ndarray) -> list[str]:
        devices = inst.gpu_devices[hosts]
        if inst.gpu_whole[shard] == 0 or not (devices != NO_DEVICES).any():
            return []
        best = int(np.argmax(devices))
        if devices[best] >= inst.gpu_whole[shard]:
            return []
        return [
            f"needs {inst.gpu_whole[shard]} whole GPU devices; best host "
            f"{inst.host_ids[hosts[best]]} has {devices[best]}"
        ]
