"""A real-GPU-cluster-shaped placement input, for the scale bench.

About 1,500 hosts in 10 zones, most with 8 GPUs (a few with 4) of one of four models, 64 or 96
cores; about 8,000 shards asking for fractions of a GPU (0.25, 0.5), one, two, four or eight
GPUs of one model, at `gpu_load` of that model's devices; 1 % of the shards with a latency-bound
dependency; a move budget of 10 % of the shards. Each shard may run on the hosts of its GPU
model in its zone and the two next to it (about a tenth of the cluster), as a scheduler's
node pools would allow. The current placement is last cycle's device-feasible packing, after
which demand grew on some shards, so a few percent of the hosts are over their devices or cpu
now. `replicas` copies the whole cluster side by side (ids suffixed), so time and memory can be
measured at 2x and 4x.
"""

from __future__ import annotations

import numpy as np

from skyshard.placement import (
    Budget,
    CandidateTable,
    Dependency,
    HostSupply,
    PlacementInput,
    ShardDemand,
)
from skyshard.placement.devices import MAX_SLOTS, devices_needed, extra_devices

MODELS = (("h100", 80.0, 4.0), ("a100", 80.0, 2.5), ("l40s", 48.0, 1.2), ("t4", 16.0, 0.4))
ZONES = 10
GPU_REQUESTS = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
GPU_SHARES = np.array([0.15, 0.2, 0.45, 0.1, 0.07, 0.03])


def cluster_input(
    n_hosts: int = 1_500,
    n_shards: int = 8_000,
    gpu_load: float = 0.85,
    seed: int = 0,
    replicas: int = 1,
) -> PlacementInput:
    parts = [_one(n_hosts, n_shards, gpu_load, seed + r, f"r{r}") for r in range(replicas)]
    return PlacementInput(
        shards=[s for p in parts for s in p.shards],
        hosts=[h for p in parts for h in p.hosts],
        candidates=CandidateTable(
            shard_ids=np.concatenate([p.candidates.shard_ids for p in parts]),
            host_ids=np.concatenate([p.candidates.host_ids for p in parts]),
            terms={
                name: np.concatenate([p.candidates.terms[name] for p in parts])
                for name in parts[0].candidates.terms
            },
            allowed=np.concatenate([p.candidates.allowed for p in parts]),
            blocked_by=np.concatenate([p.candidates.blocked_by for p in parts]),
        ),
        dependencies=[d for p in parts for d in p.dependencies],
        latency_ms={k: v for p in parts for k, v in p.latency_ms.items()},
        budget=Budget(
            max_moves=sum(p.budget.max_moves or 0 for p in parts),
            min_saving_per_move=parts[0].budget.min_saving_per_move,
            min_cycles_between_moves=parts[0].budget.min_cycles_between_moves,
        ),
    )


def _one(n_hosts: int, n_shards: int, gpu_load: float, seed: int, tag: str) -> PlacementInput:
    rng = np.random.default_rng(seed)
    model = rng.choice(len(MODELS), n_hosts, p=[0.3, 0.35, 0.2, 0.15])
    zone = rng.integers(0, ZONES, n_hosts)
    devices = np.where(rng.random(n_hosts) < 0.9, 8, 4)
    cores = rng.choice([64.0, 96.0], n_hosts)
    mem = cores * 8
    host_ids = np.array([f"{tag}-h{i:05d}" for i in range(n_hosts)], dtype=object)

    # shards: a GPU request and a model, scaled so each model is at gpu_load of its devices
    request = rng.choice(GPU_REQUESTS, n_shards, p=GPU_SHARES)
    shard_model = rng.choice(len(MODELS), n_shards, p=[0.3, 0.35, 0.2, 0.15])
    for m in range(len(MODELS)):
        mine = np.flatnonzero(shard_model == m)
        supply = devices[model == m].sum() * gpu_load
        keep = mine[np.cumsum(request[mine]) <= supply]
        drop = np.setdiff1d(mine, keep)
        shard_model[drop] = -1
    placed_ok = shard_model >= 0
    request, shard_model = request[placed_ok], shard_model[placed_ok]
    n = len(request)
    cpu = np.round(np.maximum(request, 0.25) * rng.uniform(4, 9, n), 2)
    memory = np.round(cpu * rng.uniform(3, 6, n), 1)
    shard_zone = rng.integers(0, ZONES, n)

    # last cycle's placement: first fit on devices and cpu within the shard's pools
    whole = np.where(request >= 1, np.ceil(request), 0).astype(np.int64)
    slots = np.where(request < 1, np.floor(1 / request), 0).astype(np.int64)
    taken = np.zeros(n_hosts, dtype=np.int64)
    counts = np.zeros((n_hosts, MAX_SLOTS + 1), dtype=np.int64)
    cpu_left = cores.copy()
    pools = [
        np.flatnonzero((model == m) & (np.abs(zone - z) <= 1))
        for m in range(len(MODELS))
        for z in range(ZONES)
    ]
    current = np.full(n, -1)
    for s in rng.permutation(n):
        pool = pools[shard_model[s] * ZONES + shard_zone[s]]
        pool = pool[rng.permutation(len(pool))]
        used = devices_needed(taken[pool], counts[pool])
        extra = extra_devices(counts[pool], np.full(len(pool), whole[s]), int(slots[s]))
        fits = (used + extra <= devices[pool]) & (cpu_left[pool] >= cpu[s])
        # an over-full pool: last cycle left its first host overloaded too
        host = pool[np.argmax(fits)] if fits.any() else pool[0]
        current[s] = host
        taken[host] += whole[s]
        if slots[s]:
            counts[host, slots[s]] += 1
        cpu_left[host] -= cpu[s]
    # growth since: 4 % of the shards now need 40 % more cpu
    grown = rng.random(n) < 0.04
    cpu = np.where(grown, np.round(cpu * 1.4, 2), cpu)

    shard_ids = np.array([f"{tag}-s{i:05d}" for i in range(n)], dtype=object)
    shards = [
        ShardDemand(
            shard_id=shard_ids[i],
            current_host=host_ids[current[i]],
            cpu=float(cpu[i]),
            mem_gb=float(memory[i]),
            gpu=float(request[i]),
            cycles_since_move=None,
        )
        for i in range(n)
    ]
    hosts = [
        HostSupply(
            host_id=host_ids[j],
            provider_id=f"{tag}-z{zone[j]}",
            region=f"z{zone[j]}",
            cpu=float(cores[j]),
            mem_gb=float(mem[j]),
            gpu=float(devices[j]),
            gpu_devices=int(devices[j]),
            gpu_model=MODELS[model[j]][0],
            gpu_memory_gb=MODELS[model[j]][1],
        )
        for j in range(n_hosts)
    ]

    # candidates: every host of the shard's pool; run cost from the model's price and a
    # per-host discount, migration cost for leaving the current host
    cand_shard = np.concatenate(
        [np.full(len(pools[shard_model[s] * ZONES + shard_zone[s]]), s) for s in range(n)]
    )
    cand_host = np.concatenate([pools[shard_model[s] * ZONES + shard_zone[s]] for s in range(n)])
    price = np.array([m[2] for m in MODELS])[model] * rng.uniform(0.85, 1.15, n_hosts)
    run = 24 * price[cand_host] * np.maximum(request[cand_shard], 0.25)
    migration = np.where(cand_host == current[cand_shard], 0.0, 2.0 + 0.5 * request[cand_shard])
    candidates = CandidateTable(
        shard_ids=shard_ids[cand_shard],
        host_ids=host_ids[cand_host],
        terms={"run_cost": np.round(run, 3), "migration_cost": migration},
        allowed=np.ones(len(cand_shard), dtype=bool),
        blocked_by=np.full(len(cand_shard), None, dtype=object),
    )

    # 1 % of the shards depend on another shard of their model, within 2 ms (same or next zone)
    group = shard_model * ZONES + shard_zone
    dependencies = []
    for a in rng.choice(n, max(1, n // 100), replace=False):
        peers = np.flatnonzero((group == group[a]) & (np.arange(n) != a))
        if len(peers):
            dependencies.append(Dependency(shard_ids[a], shard_ids[rng.choice(peers)], 2.0))
    latency = {
        (f"{tag}-z{a}", f"{tag}-z{b}"): 0.3 if a == b else 1.5 if abs(a - b) == 1 else 6.0
        for a in range(ZONES)
        for b in range(a, ZONES)
    }
    return PlacementInput(
        shards=shards,
        hosts=hosts,
        candidates=candidates,
        dependencies=dependencies,
        latency_ms=latency,
        budget=Budget(max_moves=n // 10, min_saving_per_move=1.0, min_cycles_between_moves=3),
    )
