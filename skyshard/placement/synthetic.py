"""Seeded random placement instances shaped like a real sky, for benchmarks and tests.

Providers sit in regions (1-3 ms inside a region, 20-80 ms across); hosts have 32-128 cpu
and a fifth carry GPUs; shards use ~`utilization` of the sky at the forecast upper bound, with
lognormal sizes, and start on random hosts, so some hosts begin over capacity. Data classes
block providers (trust, data class); costs are run cost over 24 h, migration (egress +
downtime), latency, availability risk and trust terms. A fifth of the shards have a
dependency with a 5-100 ms limit, replicas form anti-affinity groups of three, pairs form
affinity groups.
"""

from __future__ import annotations

import numpy as np

from skyshard.placement.model import (
    Budget,
    CandidateTable,
    Dependency,
    HostSupply,
    PlacementInput,
    ShardDemand,
)


def _sky(
    rng: np.random.Generator, n_hosts: int
) -> tuple[list[HostSupply], dict, np.ndarray, np.ndarray]:
    n_providers = int(np.clip(n_hosts // 10, 2, 20))
    n_regions = max(2, n_providers // 3)
    provider_region = rng.integers(0, n_regions, n_providers)
    latency: dict[tuple[str, str], float] = {}
    region_latency = rng.uniform(20, 80, (n_regions, n_regions))
    for p in range(n_providers):
        for q in range(p, n_providers):
            same = provider_region[p] == provider_region[q]
            ms = (
                0.5
                if p == q
                else rng.uniform(1, 3)
                if same
                else region_latency[provider_region[p], provider_region[q]]
            )
            latency[(f"p{p:02d}", f"p{q:02d}")] = round(float(ms), 2)
    host_provider = np.sort(rng.integers(0, n_providers, n_hosts))
    cpu = rng.choice([32, 64, 96, 128], n_hosts)
    gpu = np.where(rng.random(n_hosts) < 0.2, 8, 0)
    hosts = [
        HostSupply(
            host_id=f"h{i:04d}",
            provider_id=f"p{host_provider[i]:02d}",
            region=f"r{provider_region[host_provider[i]]}",
            cpu=float(cpu[i]),
            mem_gb=float(cpu[i] * rng.choice([4, 8])),
            gpu=float(gpu[i]),
            net_mbps=float(rng.choice([10_000, 25_000])),
        )
        for i in range(n_hosts)
    ]
    return hosts, latency, host_provider, provider_region


def _previous_plan(
    rng: np.random.Generator, demand: np.ndarray, capacity: np.ndarray, allowed: np.ndarray
) -> np.ndarray:
    """Last cycle's hosts: each shard on a random allowed host with room (any allowed if none)."""
    remaining = capacity.copy()
    current = np.empty(len(demand), dtype=np.int64)
    for shard in rng.permutation(len(demand)):
        hosts = rng.permutation(np.flatnonzero(allowed[shard]))
        fits = hosts[(demand[shard] <= remaining[hosts]).all(axis=1)]
        current[shard] = fits[0] if len(fits) else hosts[0]
        remaining[current[shard]] -= demand[shard]
    return current


def random_instance(
    n_shards: int, n_hosts: int, seed: int = 0, *, utilization: float = 0.7
) -> PlacementInput:
    rng = np.random.default_rng(seed)
    hosts, latency, host_provider, _ = _sky(rng, n_hosts)
    n_providers = int(host_provider.max()) + 1
    capacity = np.array([[h.cpu, h.mem_gb, h.gpu, h.net_mbps] for h in hosts])

    size = rng.lognormal(0.0, 0.6, n_shards)
    cpu = np.round(size / size.sum() * utilization * capacity[:, 0].sum(), 2)
    mem = np.round(cpu * rng.uniform(2, 6, n_shards), 2)
    gpu_hosts = np.flatnonzero(capacity[:, 2] > 0)
    gpu = np.where(rng.random(n_shards) < (0.03 if len(gpu_hosts) else 0.0), 1.0, 0.0)
    net = np.round(size / size.sum() * 0.5 * capacity[:, 3].sum(), 1)
    shard_idx = np.repeat(np.arange(n_shards), n_hosts)
    host_idx = np.tile(np.arange(n_hosts), n_shards)
    provider = host_provider[host_idx]
    affinity = np.where((np.arange(n_shards) % 50) < 2, np.arange(n_shards) // 50, -1)
    partner = np.flatnonzero(np.arange(n_shards) % 50 == 1)  # second of each affinity pair
    shard_class = np.where(gpu > 0, 0, rng.choice(3, n_shards, p=[0.7, 0.2, 0.1]))
    shard_class[partner] = shard_class[partner - 1]
    data_class = shard_class[shard_idx]
    untrusted = (np.arange(n_providers) == rng.integers(0, n_providers))[provider]
    restricted_ok = np.isin(provider, rng.choice(n_providers, 2, replace=False))
    blocked_by = np.full(len(shard_idx), None, dtype=object)
    blocked_by[(data_class == 1) & untrusted] = "trust"
    blocked_by[(data_class == 2) & ~restricted_ok] = "data_class"

    allowed = (blocked_by == None).reshape(n_shards, n_hosts)  # noqa: E711 - elementwise
    demand = np.column_stack([cpu, mem, gpu, net])
    current = _previous_plan(rng, demand, capacity, allowed)
    current[partner] = current[partner - 1]  # last plan kept affinity pairs together
    # Since the last plan: a tenth of the shards grew by 30 %, one more provider lost trust.
    grown = rng.random(n_shards) < 0.1
    cpu, mem, net = (np.round(np.where(grown, 1.3 * x, x), 2) for x in (cpu, mem, net))
    if n_providers >= 3:
        distrusted = (provider == rng.integers(0, n_providers)) & (data_class == 1) & ~untrusted
        blocked_by[distrusted] = "trust"

    replica_group = np.arange(n_shards) // 3
    n_replica_groups = n_shards // 3 + 1
    anti = np.where(rng.random(n_replica_groups) < 0.3, np.arange(n_replica_groups), -1)[
        replica_group
    ]
    cycles = rng.integers(0, 10, n_shards)
    shards = [
        ShardDemand(
            shard_id=f"s{i:05d}",
            current_host=hosts[current[i]].host_id,
            cpu=float(cpu[i]),
            mem_gb=float(mem[i]),
            gpu=float(gpu[i]),
            net_mbps=float(net[i]),
            affinity_group=f"a{affinity[i]}" if affinity[i] >= 0 else None,
            anti_affinity_group=f"r{anti[i]}" if anti[i] >= 0 else None,
            cycles_since_move=int(cycles[i]) if cycles[i] < 9 else None,
        )
        for i in range(n_shards)
    ]

    price = rng.uniform(0.8, 1.2, n_hosts) * rng.uniform(0.02, 0.05, n_providers)[host_provider]
    resources = cpu + mem / 4 + gpu * 10
    stays = host_idx == current[shard_idx]
    state_gb = rng.uniform(1, 50, n_shards)
    egress = rng.uniform(0.01, 0.09, n_providers)
    terms = {
        "run_cost": np.round(price[host_idx] * resources[shard_idx] * 24, 4),
        "migration_cost": np.where(
            stays,
            0.0,
            np.round(state_gb[shard_idx] * egress[host_provider[current[shard_idx]]] + 0.5, 4),
        ),
        "latency_penalty": np.round(rng.uniform(0, 0.3, n_providers)[provider], 4),
        "availability_risk": np.round(
            rng.uniform(0, 0.05, n_hosts)[host_idx] * resources[shard_idx], 4
        ),
        "trust_penalty": np.round(rng.uniform(0, 0.5, n_providers)[provider], 4),
    }
    ids = np.array([s.shard_id for s in shards], dtype=object)
    host_ids = np.array([h.host_id for h in hosts], dtype=object)
    candidates = CandidateTable(
        shard_ids=ids[shard_idx],
        host_ids=host_ids[host_idx],
        terms=terms,
        allowed=blocked_by == None,  # noqa: E711 - elementwise
        blocked_by=blocked_by,
    )

    n_deps = n_shards // 5
    dep_a = rng.integers(0, n_shards, n_deps)
    dep_b = (dep_a + rng.integers(1, 20, n_deps)) % n_shards
    # Last cycle's plan met every limit: each limit is one of the tiers above today's latency.
    tiers = np.array([5.0, 10.0, 50.0, 100.0])
    provider_ms = np.full((n_providers, n_providers), 100.0)
    for (p, q), ms in latency.items():
        provider_ms[int(p[1:]), int(q[1:])] = provider_ms[int(q[1:]), int(p[1:])] = ms
    now_ms = provider_ms[host_provider[current[dep_a]], host_provider[current[dep_b]]]
    lowest_tier = np.searchsorted(tiers, now_ms)
    limits = tiers[np.minimum(lowest_tier + rng.integers(0, 2, n_deps), len(tiers) - 1)]
    dependencies = [
        Dependency(ids[a], ids[b], float(limit))
        for a, b, limit in zip(dep_a, dep_b, limits, strict=True)
        if a != b
    ]
    return PlacementInput(
        shards=shards,
        hosts=hosts,
        candidates=candidates,
        dependencies=dependencies,
        latency_ms=latency,
        budget=Budget(
            max_moves=max(1, n_shards // 5),
            min_saving_per_move=1.0,
            min_relative_saving=0.05,
            min_cycles_between_moves=3,
        ),
    )
