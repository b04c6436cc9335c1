"""Seeded random placement instances shaped like a real sky, feasible by construction.

Providers sit in regions (1-3 ms between providers of a region, 20-80 ms across); hosts have
32-128 cpu and a fifth carry GPUs; shards use ~`utilization` of the sky's cpu with lognormal
sizes. Last cycle's plan put every shard on an allowed host with headroom, replicas on distinct
hosts, affinity pairs on one provider, and every dependency limit is a latency tier that plan
met. Since then some shards grew (a few hosts are now over capacity) and one provider lost
trust for confidential shards: only those shards break a rule by staying. A witness assignment
(moving just those, within their region, so no latency limit breaks) is built alongside and
the move budget covers it, so every instance is feasible. Scenarios: "steady" (a tenth of the
shards grew 30 %) and "tight" (more load, a fifth grew 40 %); "overbooked" inflates every
demand afterwards so the sky is short of capacity, which makes it infeasible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyshard.placement.model import (
    Budget,
    CandidateTable,
    Dependency,
    HostSupply,
    PlacementInput,
    ShardDemand,
)

NONE = -1
LATENCY_TIERS = np.array([5.0, 10.0, 50.0, 100.0])  # every tier exceeds intra-region latency


@dataclass(frozen=True)
class Scenario:
    utilization: float
    grown_share: float
    growth: float
    fill: tuple[float, float]  # last plan filled each host to a random share in this range
    inflate: float = 1.0  # demand multiplier applied after the witness (breaks feasibility)


SCENARIOS = {
    "steady": Scenario(utilization=0.7, grown_share=0.1, growth=1.3, fill=(0.75, 0.95)),
    "tight": Scenario(utilization=0.8, grown_share=0.2, growth=1.4, fill=(0.85, 1.0)),
    "overbooked": Scenario(
        utilization=0.8, grown_share=0.1, growth=1.3, fill=(0.85, 1.0), inflate=1.35
    ),
}


@dataclass(frozen=True)
class Sky:
    hosts: list[HostSupply]
    latency: dict[tuple[str, str], float]
    host_provider: np.ndarray
    provider_region: np.ndarray
    capacity: np.ndarray  # (hosts, resources)

    @property
    def n_providers(self) -> int:
        return len(self.provider_region)

    def provider_ms(self) -> np.ndarray:
        ms = np.zeros((self.n_providers, self.n_providers))
        for (p, q), value in self.latency.items():
            ms[int(p[1:]), int(q[1:])] = ms[int(q[1:]), int(p[1:])] = value
        return ms


def _sky(rng: np.random.Generator, n_hosts: int) -> Sky:
    n_providers = min(int(np.clip(n_hosts // 10, 2, 20)), n_hosts)
    n_regions = max(2, n_providers // 3)
    provider_region = rng.integers(0, n_regions, n_providers)
    latency: dict[tuple[str, str], float] = {}
    region_latency = rng.uniform(20, 80, (n_regions, n_regions))
    region_latency = (region_latency + region_latency.T) / 2  # providers of a region look alike
    for p in range(n_providers):
        for q in range(p, n_providers):
            rp, rq = provider_region[p], provider_region[q]
            ms = 0.5 if p == q else rng.uniform(1, 3) if rp == rq else region_latency[rp, rq]
            latency[(f"p{p:02d}", f"p{q:02d}")] = round(float(ms), 2)
    # Every provider has a host, so every latency entry names known providers.
    host_provider = np.sort(
        np.concatenate(
            [np.arange(n_providers), rng.integers(0, n_providers, n_hosts - n_providers)]
        )
    )
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
    capacity = np.array([[h.cpu, h.mem_gb, h.gpu, h.net_mbps] for h in hosts])
    return Sky(hosts, latency, host_provider, provider_region, capacity)


class _Placer:
    """Tracks loads and group rules while shards are put on hosts one at a time."""

    def __init__(self, sky: Sky, demand: np.ndarray, anti: np.ndarray, affinity: np.ndarray):
        self.sky, self.demand, self.anti, self.affinity = sky, demand, anti, affinity
        self.host_of = np.full(len(demand), NONE, dtype=np.int64)
        self.load = np.zeros_like(sky.capacity)

    def options(self, shard: int, hosts: np.ndarray, limit: np.ndarray) -> np.ndarray:
        """Hosts among `hosts` with room up to `limit` and no replica of the shard."""
        room = (self.load[hosts] + self.demand[shard] <= limit[hosts] + 1e-9).all(axis=1)
        hosts = hosts[room]
        if self.anti[shard] != NONE:
            taken = self.host_of[(self.anti == self.anti[shard]) & (self.host_of != NONE)]
            hosts = hosts[~np.isin(hosts, taken)]
        if self.affinity[shard] != NONE:
            mates = self.host_of[(self.affinity == self.affinity[shard]) & (self.host_of != NONE)]
            if len(mates):
                hosts = hosts[self.sky.host_provider[hosts] == self.sky.host_provider[mates[0]]]
        return hosts

    def put(self, shard: int, host: int) -> None:
        if self.host_of[shard] != NONE:
            self.load[self.host_of[shard]] -= self.demand[shard]
        self.host_of[shard] = host
        self.load[host] += self.demand[shard]


def _last_plan(
    rng: np.random.Generator, placer: _Placer, allowed: np.ndarray, fill: tuple[float, float]
) -> None:
    """Every shard on a random allowed host filled to at most its fill share.

    A shard with no such host drops its group rules, then may use the host's whole capacity,
    then shrinks to fit the roomiest allowed host, so the plan always meets every rule.
    """
    capacity = placer.sky.capacity
    limit = capacity * rng.uniform(*fill, (len(capacity), 1))
    for shard in rng.permutation(len(placer.demand)):
        hosts = rng.permutation(np.flatnonzero(allowed[shard]))
        options = placer.options(shard, hosts, limit)
        if not len(options):
            placer.anti[shard] = placer.affinity[shard] = NONE
            options = placer.options(shard, hosts, capacity)
        if not len(options):
            room = capacity[hosts] - placer.load[hosts]
            share = np.where(
                placer.demand[shard] > 0, room / np.maximum(placer.demand[shard], 1e-9), np.inf
            )
            best = int(np.argmax(share.min(axis=1)))
            scale = max(0.0, min(1.0, float(share[best].min())))
            placer.demand[shard] = np.floor(placer.demand[shard] * scale * 100) / 100
            options = hosts[best : best + 1]
        placer.put(shard, int(options[0]))


def _witness(
    placer: _Placer, allowed: np.ndarray, grown: np.ndarray, before: np.ndarray, forced: np.ndarray
) -> None:
    """Moves the `forced` shards, and enough shards off each overloaded host, within region.

    A shard moves within its provider if it can, else within its region, so every latency
    limit (each a tier above intra-region latency) still holds. A forced shard (or affinity
    pair) with nowhere to go is no longer forced: the provider keeps its trust for it. A host
    that cannot be relieved gets its shards back and their growth undone.
    """
    sky = placer.sky
    region = sky.provider_region[sky.host_provider]

    def move(shards: np.ndarray) -> bool:
        """Moves the shards (an affinity group, or one shard) to one provider; all or none."""
        start = placer.host_of[shards].copy()
        here = start[0]
        hosts = np.flatnonzero(allowed[shards].all(axis=0) & (region == region[here]))
        for provider in np.unique(sky.host_provider[hosts]):
            on_provider = hosts[sky.host_provider[hosts] == provider]
            for shard in shards:
                options = placer.options(
                    shard, on_provider[on_provider != placer.host_of[shard]], sky.capacity
                )
                if not len(options):
                    break
                placer.put(shard, int(options[0]))
            else:
                return True
            for shard, host in zip(shards, start, strict=True):
                placer.put(int(shard), int(host))
        return False

    def unit(shard: int) -> np.ndarray:
        group = placer.affinity[shard]
        return np.array([shard]) if group == NONE else np.flatnonzero(placer.affinity == group)

    for shard in np.flatnonzero(forced):
        members = unit(shard)
        if shard == members[0] and not (forced[members].all() and move(members)):
            forced[members] = False
    overloaded = (placer.load > sky.capacity + 1e-9).any(axis=1)
    for host in np.flatnonzero(overloaded):
        on_host = np.flatnonzero(placer.host_of == host)
        for shard in on_host[np.argsort(-placer.demand[on_host, 0])]:
            if not (placer.load[host] > sky.capacity[host] + 1e-9).any():
                break
            if placer.affinity[shard] == NONE:
                move(np.array([shard]))
        if (placer.load[host] > sky.capacity[host] + 1e-9).any():
            for shard in on_host:
                placer.put(int(shard), int(host))
            undo = on_host[grown[on_host]]
            placer.load[host] -= (placer.demand[undo] - before[undo]).sum(axis=0)
            placer.demand[undo] = before[undo]
            grown[undo] = False


def random_instance_with_witness(
    n_shards: int, n_hosts: int, seed: int = 0, scenario: str = "steady"
) -> tuple[PlacementInput, dict[str, str]]:
    """The instance and an assignment that satisfies all of its constraints (unless the
    scenario is meant to be infeasible)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario {scenario!r}: expected one of {', '.join(SCENARIOS)}")
    spec = SCENARIOS[scenario]
    rng = np.random.default_rng(seed)
    sky = _sky(rng, n_hosts)
    capacity, host_provider, n_providers = sky.capacity, sky.host_provider, sky.n_providers

    size = rng.lognormal(0.0, 0.6, n_shards)
    cpu = np.round(size / size.sum() * spec.utilization * capacity[:, 0].sum(), 2)
    mem = np.round(cpu * rng.uniform(2, 6, n_shards), 2)
    has_gpu_hosts = bool((capacity[:, 2] > 0).any())
    gpu = np.where(rng.random(n_shards) < (0.03 if has_gpu_hosts else 0.0), 1.0, 0.0)
    net = np.round(size / size.sum() * 0.5 * capacity[:, 3].sum(), 1)
    demand = np.column_stack([cpu, mem, gpu, net])

    shard_idx = np.repeat(np.arange(n_shards), n_hosts)
    host_idx = np.tile(np.arange(n_hosts), n_shards)
    provider = host_provider[host_idx]
    affinity = np.where((np.arange(n_shards) % 50) < 2, np.arange(n_shards) // 50, NONE)
    partner = np.flatnonzero(np.arange(n_shards) % 50 == 1)  # second of each affinity pair
    shard_class = np.where(gpu > 0, 0, rng.choice(3, n_shards, p=[0.7, 0.2, 0.1]))
    shard_class[partner] = shard_class[partner - 1]
    data_class = shard_class[shard_idx]
    untrusted = rng.integers(0, n_providers)
    restricted_ok = np.isin(provider, rng.choice(n_providers, 2, replace=False))
    blocked_by = np.full(len(shard_idx), None, dtype=object)
    blocked_by[(data_class == 1) & (provider == untrusted)] = "trust"
    blocked_by[(data_class == 2) & ~restricted_ok] = "data_class"
    allowed = (blocked_by == None).reshape(n_shards, n_hosts)  # noqa: E711 - elementwise
    allowed &= (capacity[None, :, 2] > 0) | (gpu[:, None] == 0)

    replica_group = np.arange(n_shards) // 3
    anti = np.where(rng.random(n_shards // 3 + 1) < 0.3, np.arange(n_shards // 3 + 1), NONE)
    placer = _Placer(sky, demand, anti[replica_group], affinity)
    _last_plan(rng, placer, allowed, spec.fill)
    current = placer.host_of.copy()

    before = placer.demand.copy()
    grown = rng.random(n_shards) < spec.grown_share
    placer.demand[grown] = np.round(
        placer.demand[grown] * np.array([spec.growth, spec.growth, 1.0, spec.growth]), 2
    )
    placer.load = np.zeros_like(capacity)
    np.add.at(placer.load, current, placer.demand)
    # One more provider, in a region with another provider to move to, loses trust.
    region_size = np.bincount(sky.provider_region)[sky.provider_region]
    eligible = np.flatnonzero((region_size >= 2) & (np.arange(n_providers) != untrusted))
    distrusted = int(rng.choice(eligible)) if n_providers >= 3 and len(eligible) else NONE
    trust_lost = (shard_class == 1) & (distrusted != NONE)
    on_distrusted = host_provider == distrusted
    forced = trust_lost & on_distrusted[current]
    _witness(placer, allowed & ~(trust_lost[:, None] & on_distrusted), grown, before, forced)
    trust_lost &= ~on_distrusted[current] | forced  # who could not leave keeps its trust
    blocked_by[trust_lost[shard_idx] & on_distrusted[host_idx]] = "trust"
    witness = placer.host_of
    demand = np.round(placer.demand * spec.inflate, 2)

    cycles = rng.integers(0, 10, n_shards)
    shards = [
        ShardDemand(
            shard_id=f"s{i:05d}",
            current_host=sky.hosts[current[i]].host_id,
            cpu=float(demand[i, 0]),
            mem_gb=float(demand[i, 1]),
            gpu=float(demand[i, 2]),
            net_mbps=float(demand[i, 3]),
            affinity_group=f"a{placer.affinity[i]}" if placer.affinity[i] != NONE else None,
            anti_affinity_group=f"r{placer.anti[i]}" if placer.anti[i] != NONE else None,
            cycles_since_move=int(cycles[i]) if cycles[i] < 9 else None,
        )
        for i in range(n_shards)
    ]

    price = rng.uniform(0.8, 1.2, n_hosts) * rng.uniform(0.02, 0.05, n_providers)[host_provider]
    resources = demand[:, 0] + demand[:, 1] / 4 + demand[:, 2] * 10
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
    host_ids = np.array([h.host_id for h in sky.hosts], dtype=object)
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
    provider_ms = sky.provider_ms()
    now_ms = provider_ms[host_provider[current[dep_a]], host_provider[current[dep_b]]]
    lowest_tier = np.searchsorted(LATENCY_TIERS, now_ms)
    tier = np.minimum(lowest_tier + rng.integers(0, 2, n_deps), len(LATENCY_TIERS) - 1)
    dependencies = [
        Dependency(ids[a], ids[b], float(LATENCY_TIERS[t]))
        for a, b, t in zip(dep_a, dep_b, tier, strict=True)
        if a != b
    ]
    moves = int((witness != current).sum())
    inp = PlacementInput(
        shards=shards,
        hosts=sky.hosts,
        candidates=candidates,
        dependencies=dependencies,
        latency_ms=sky.latency,
        budget=Budget(
            max_moves=max(1, n_shards // 5, moves),
            min_saving_per_move=1.0,
            min_relative_saving=0.05,
            min_cycles_between_moves=3,
        ),
    )
    return inp, {ids[s]: host_ids[h] for s, h in enumerate(witness)}


def random_instance(
    n_shards: int, n_hosts: int, seed: int = 0, scenario: str = "steady"
) -> PlacementInput:
    return random_instance_with_witness(n_shards, n_hosts, seed, scenario)[0]
