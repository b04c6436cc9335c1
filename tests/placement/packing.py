"""An independent check that a plan packs onto physical GPU devices.

It shares no code with skyshard.placement: for every host that declares devices, the shards the
plan puts there are packed for real. A request of g >= 1 GPUs takes ceil(g) whole devices; a
fractional request must fit in what is left of one device. First-fit decreasing settles most
hosts; the rest are searched exhaustively.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

from skyshard.placement import PlacementInput, PlacementResult, check_assignment

EPS = 1e-9


def _fits(items: list[float], bins: list[float]) -> bool:
    if not items:
        return True
    first, rest = items[0], items[1:]
    tried: set[float] = set()
    for i, free in enumerate(bins):
        key = round(free, 9)
        if free + EPS >= first and key not in tried:
            tried.add(key)
            bins[i] -= first
            if _fits(rest, bins):
                return True
            bins[i] += first
    return False


def packs(devices: int, requests: list[float]) -> bool:
    whole = sum(math.ceil(g - EPS) for g in requests if g >= 1 - EPS)
    shares = sorted((g for g in requests if EPS < g < 1 - EPS), reverse=True)
    if whole > devices:
        return False
    bins = [1.0] * (devices - whole)
    greedy = list(bins)
    for g in shares:
        slot = next((i for i, free in enumerate(greedy) if free + EPS >= g), None)
        if slot is None:
            return _fits(shares, bins)
        greedy[slot] -= g
    return True


def device_packing_failures(inp: PlacementInput, assignment: Mapping[str, str]) -> dict[str, str]:
    """Host -> what does not pack there."""
    devices = {h.host_id: h.gpu_devices for h in inp.hosts if h.gpu_devices is not None}
    requests: dict[str, list[float]] = defaultdict(list)
    for shard in inp.shards:
        host = assignment.get(shard.shard_id)
        if host in devices and shard.gpu > 0:
            requests[host].append(shard.gpu)
    return {
        host: f"GPU requests {sorted(gpus)} do not pack onto {devices[host]} devices"
        for host, gpus in sorted(requests.items())
        if not packs(devices[host], gpus)
    }


def assert_plan_sound(inp: PlacementInput, result: PlacementResult) -> None:
    """The plan's GPUs pack onto real devices on every host the result does not report as short
    of devices, and what the checker finds broken is exactly what the result reports as unfixed
    (so a clean plan has nothing unfixed)."""
    reported = {
        line.split()[2].rstrip(":") for line in result.unfixed if line.startswith("devices")
    }
    assert set(device_packing_failures(inp, result.assignment)) <= reported
    found = [f"{v.family}: {v.message}" for v in check_assignment(inp, result.assignment)]
    assert found == list(result.unfixed)
    assert (result.status == "partial") == bool(result.unfixed)
    assert set(result.unplaced) == {
        s.shard_id for s in inp.shards if s.shard_id not in result.assignment
    }
