"""The GPU device rule, defined once for the model, the heuristic, the greedy baseline and the
checker.

A host that declares devices has `gpu_devices` whole GPUs. A shard asking for g >= 1 GPUs takes
ceil(g) whole devices; a shard asking for 0 < g < 1 sits on one device shared only with shards
of its slot class k = floor(1/g) (k shards of that class fit one device, at most MAX_SLOTS).
A host then needs whole + sum_k ceil(n_k / k) devices. Keeping classes apart is a sufficient
rule (every plan it accepts packs onto the physical devices) that stays linear in the MILP:
one integer "devices given to class k" variable per host and class present.
"""

from __future__ import annotations

import numpy as np

NO_DEVICES = -1  # the host declares no devices: gpu is a plain divisible amount
MAX_SLOTS = 16  # a device is never split in more than this many shares
_EPS = 1e-9


def whole_devices(gpu: np.ndarray) -> np.ndarray:
    """Devices a shard takes whole: ceil(g) for g >= 1, else 0."""
    gpu = np.asarray(gpu, dtype=float)
    return np.where(gpu >= 1 - _EPS, np.ceil(gpu - _EPS), 0).astype(np.int64)


def slot_class(gpu: np.ndarray) -> np.ndarray:
    """Shards of this size that share one device (0 for shards without a fractional GPU)."""
    gpu = np.asarray(gpu, dtype=float)
    fractional = (gpu > _EPS) & (gpu < 1 - _EPS)
    k = np.floor(1 / np.where(fractional, gpu, 1.0) + _EPS)
    return np.where(fractional, np.minimum(k, MAX_SLOTS), 0).astype(np.int64)


def devices_needed(whole: np.ndarray, slot_counts: np.ndarray) -> np.ndarray:
    """Devices each host needs: `whole` (hosts,), `slot_counts` (hosts, MAX_SLOTS + 1) shards per
    slot class."""
    k = np.arange(1, MAX_SLOTS + 1)
    return whole + (-(-slot_counts[:, 1:] // k)).sum(axis=1)


def extra_devices(slot_counts: np.ndarray, whole: np.ndarray, slots: int) -> np.ndarray:
    """Devices one more shard (`whole` devices (hosts,) or slot class `slots`) adds per host."""
    if slots == 0:
        return whole
    n = slot_counts[:, slots]
    return -(-(n + 1) // slots) - (-(-n // slots))


def fits_devices(devices: np.ndarray, whole: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Whether each shard alone fits each host's devices (hosts without devices always do)."""
    need = np.maximum(whole, (slots > 0).astype(np.int64))
    return (devices == NO_DEVICES) | (need <= devices)


def host_usage(
    n_hosts: int, host_of: np.ndarray, whole: np.ndarray, slots: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(whole devices taken (hosts,), shards per slot class (hosts, MAX_SLOTS + 1)) for the
    shards placed at `host_of` (negative = unplaced)."""
    placed = host_of >= 0
    taken = np.bincount(host_of[placed], weights=whole[placed], minlength=n_hosts)
    counts = np.zeros((n_hosts, MAX_SLOTS + 1), dtype=np.int64)
    np.add.at(counts, (host_of[placed], slots[placed]), 1)
    counts[:, 0] = 0
    return taken.astype(np.int64), counts
