"""The simulated sky's behaviour over time: usage, host capacity, latency, prices and incidents.

All series are numpy arrays over a time grid that runs `FUTURE_DAYS` past `end`, so the
planted bottlenecks can be located exactly; only the observed part is written out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from skyshard.config.shards import Shard, expand_workloads
from skyshard.config.workloads import WorkloadsFile
from skyshard.sim.layout import (
    INSTANCE_TYPES,
    Layout,
    ProviderLayout,
    base_latency,
    random_id,
    rng_for,
    zone_of,
)
from skyshard.sim.params import SkyParams

FUTURE_DAYS = 2
RESOURCES = ("cpu", "mem_gb", "net_mbps")
RAMP_HOURS = 72
GROWTH_SHARE_OF_HOST = 0.3
"""A growing shard adds this share of its host's cpu over the ramp: enough to overflow a busy
host, small enough that a calmer host elsewhere can still take it."""
CROSSING_TARGETS_H = (6.0, 10.0, 14.0)
COMPONENTS = ("API", "Compute", "Block Storage", "Network")


@dataclass
class Incident:
    """A Statuspage incident or maintenance of one provider (naive UTC times)."""

    provider_id: str
    incident_id: str
    kind: str  # incident | maintenance
    name: str
    impact: str
    start: datetime
    end: datetime | None
    status: str
    components: tuple[str, ...]


@dataclass
class PriceSeries:
    """Hourly prices of one provider: price[zone, instance_type, hour] per instance-hour."""

    provider_id: str
    region: str
    zones: tuple[str, ...]
    instance_types: dict[str, float]
    hours: np.ndarray  # unix seconds
    price: np.ndarray


@dataclass
class World:
    params: SkyParams
    layout: Layout
    shards: list[Shard]
    seconds: np.ndarray
    """Unix seconds of every step, observed window first, then FUTURE_DAYS more."""
    observed: int
    shard_usage: dict[str, np.ndarray]  # resource -> (shards, steps)
    host_ids: list[str]
    host_provider: list[str]
    host_capacity: dict[str, np.ndarray]  # resource -> (hosts,)
    host_used: dict[str, np.ndarray]  # resource -> (hosts, steps)
    latency_ms: np.ndarray  # (providers, providers, steps)
    base_latency_ms: np.ndarray  # (providers, providers)
    prices: list[PriceSeries]
    incidents: list[Incident]
    planted: dict = field(default_factory=dict)

    def host_free(self, resource: str) -> np.ndarray:
        capacity = self.host_capacity[resource][:, None]
        return np.clip(capacity - self.host_used[resource], 0, None)

    def provider(self, provider_id: str) -> ProviderLayout:
        return next(p for p in self.layout.providers if p.id == provider_id)


def build_world(params: SkyParams, layout: Layout) -> World:
    shards = expand_workloads(
        WorkloadsFile.model_validate(layout.workloads_doc).workloads, "workloads.yaml"
    )
    start_s = int(params.start.replace(tzinfo=UTC).timestamp())
    steps = params.steps + FUTURE_DAYS * 1440 // params.step_minutes
    seconds = start_s + 60 * params.step_minutes * np.arange(steps, dtype=np.int64)
    hosts = [(p["id"], h) for p in layout.providers_doc["providers"] for h in p["hosts"]]
    host_ids = [h["id"] for _, h in hosts]
    host_index = {h: i for i, h in enumerate(host_ids)}
    on_host = np.array([host_index[s.current_host] for s in shards])
    capacity = {r: np.array([float(h["capacity"][r]) for _, h in hosts]) for r in RESOURCES}

    growing = _pick_growing(params, shards, on_host, capacity["cpu"])
    usage, usage_clean = _shard_usage(params, shards, seconds, growing, on_host, capacity)
    used, crossings = _host_usage(params, seconds, on_host, capacity, usage, usage_clean, growing)
    incidents, planted_incident, planted_maintenance = _incidents(params, layout)
    latency, base = _latency(params, layout, seconds, planted_incident)
    prices, spike = _prices(params, layout)
    world = World(
        params=params,
        layout=layout,
        shards=shards,
        seconds=seconds,
        observed=params.steps,
        shard_usage=usage,
        host_ids=host_ids,
        host_provider=[pid for pid, _ in hosts],
        host_capacity=capacity,
        host_used=used,
        latency_ms=latency,
        base_latency_ms=base,
        prices=prices,
        incidents=incidents,
    )
    world.planted = _planted(
        world, growing, crossings, planted_incident, planted_maintenance, spike
    )
    return world


def _pick_growing(
    params: SkyParams, shards: list[Shard], on_host: np.ndarray, host_cpu: np.ndarray
) -> dict[int, float]:
    """Shard index -> hours after `end` its host should run out of cpu (2-3 shards)."""
    wanted = min(len(CROSSING_TARGETS_H), max(2, len(shards) // 16))
    rng = rng_for(params, "growing")
    chosen: dict[int, float] = {}
    used_hosts: set[int] = set()
    for index in rng.permutation(len(shards)):
        host = int(on_host[index])
        if host in used_hosts or host_cpu[host] < 64:
            continue
        chosen[int(index)] = CROSSING_TARGETS_H[len(chosen)]
        used_hosts.add(host)
        if len(chosen) == wanted:
            break
    return chosen


def _time_features(seconds: np.ndarray, start_s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hour = (seconds % 86400) / 3600
    days = (seconds - start_s) / 86400
    week = ((seconds // 86400 + 3) % 7 + hour / 24) / 7  # 0 at Monday 00:00
    return hour, days, week


def _seasonal(
    rng: np.random.Generator, n: int, seconds: np.ndarray, start_s: int, daily=(0.15, 0.4)
) -> np.ndarray:
    """(n, steps) multiplicative shape: daily peak in the afternoon, weekend dip, trend."""
    hour, days, week = _time_features(seconds, start_s)
    amp_d = rng.uniform(*daily, n)[:, None]
    peak = rng.uniform(12, 18, n)[:, None]
    amp_w = rng.uniform(0.05, 0.15, n)[:, None]
    trend = rng.normal(0.003, 0.004, n)[:, None]
    shape = 1 + amp_d * np.cos(2 * np.pi * (hour[None, :] - peak) / 24)
    weekend = 0.5 * (1 - np.cos(2 * np.pi * np.clip(week * 7 - 5, 0, 2) / 2))
    shape *= 1 - amp_w * weekend[None, :]
    shape *= 1 + trend * days[None, :]
    return shape


def _shard_usage(
    params: SkyParams,
    shards: list[Shard],
    seconds: np.ndarray,
    growing: dict[int, float],
    on_host: np.ndarray,
    capacity: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Observed usage (noise and bursts) and its clean model, per resource."""
    rng = rng_for(params, "usage")
    start_s = int(seconds[0])
    n = len(shards)
    steps_per_hour = 60 // params.step_minutes if params.step_minutes <= 60 else 1
    shape = _seasonal(rng, n, seconds, start_s)
    requested = {r: np.array([getattr(s.resources, r) for s in shards]) for r in RESOURCES}
    level = {"cpu": (0.3, 0.6), "mem_gb": (0.4, 0.7), "net_mbps": (0.2, 0.5)}
    clean = {}
    for resource in RESOURCES:
        base = requested[resource] * rng.uniform(*level[resource], n)
        # Memory follows the load only weakly.
        factor = shape if resource != "mem_gb" else 1 + 0.15 * (shape - 1)
        clean[resource] = base[:, None] * factor
    ramp_start = params.end - timedelta(hours=RAMP_HOURS)
    ramp_h = np.clip((seconds - ramp_start.replace(tzinfo=UTC).timestamp()) / 3600, 0, None)
    for index in growing:
        host_cpu = capacity["cpu"][on_host[index]]
        clean["cpu"][index] += GROWTH_SHARE_OF_HOST * host_cpu / RAMP_HOURS * ramp_h
        clean["mem_gb"][index] *= 1 + 0.3 * ramp_h / RAMP_HOURS
    calm = np.isin(on_host, [on_host[i] for i in growing])
    observed = {}
    for resource in RESOURCES:
        noise = 1 + rng.normal(0, 0.03 if resource != "net_mbps" else 0.08, clean[resource].shape)
        noise[calm] = 1 + (noise[calm] - 1) / 3
        observed[resource] = clean[resource] * noise
    _add_bursts(params, rng, observed, clean["cpu"], calm, steps_per_hour)
    for resource in RESOURCES:
        np.clip(observed[resource], 0, None, out=observed[resource])
    return observed, clean


def _add_bursts(
    params: SkyParams,
    rng: np.random.Generator,
    observed: dict[str, np.ndarray],
    cpu_clean: np.ndarray,
    calm: np.ndarray,
    steps_per_hour: int,
) -> None:
    """Short load bursts with exponential decay (cpu and net), none on the planted hosts."""
    n, steps = cpu_clean.shape
    counts = rng.poisson(params.days * 0.3, n)
    length = 4 * steps_per_hour
    for index in np.flatnonzero(~calm):
        for _ in range(counts[index]):
            at = int(rng.integers(0, steps - length))
            size = rng.uniform(0.5, 1.5)
            decay = np.exp(-np.arange(length) / (rng.uniform(0.5, 2) * steps_per_hour))
            bump = size * decay
            mean_cpu = cpu_clean[index].mean()
            observed["cpu"][index, at : at + length] += mean_cpu * bump
            observed["net_mbps"][index, at : at + length] *= 1 + bump


def _host_usage(
    params: SkyParams,
    seconds: np.ndarray,
    on_host: np.ndarray,
    capacity: dict[str, np.ndarray],
    usage: dict[str, np.ndarray],
    usage_clean: dict[str, np.ndarray],
    growing: dict[int, float],
) -> tuple[dict[str, np.ndarray], dict[int, int]]:
    """Per host: shards' usage plus other tenants' load; growing hosts tuned to fill up."""
    rng = rng_for(params, "hosts")
    hosts = len(capacity["cpu"])
    membership = np.zeros((hosts, len(on_host)))
    membership[on_host, np.arange(len(on_host))] = 1
    start_s = int(seconds[0])
    used: dict[str, np.ndarray] = {}
    crossings: dict[int, int] = {}
    for resource in RESOURCES:
        shape = _seasonal(rng, hosts, seconds, start_s, daily=(0.1, 0.3))
        level = rng.uniform(0.15, 0.35, hosts) * capacity[resource]
        noise = 1 + rng.normal(0, 0.02, shape.shape)
        if resource == "cpu":
            for index, target_h in growing.items():
                host = int(on_host[index])
                shape[host] = _seasonal(rng, 1, seconds, start_s, daily=(0.03, 0.06))[0]
                shards_clean = membership[host] @ usage_clean["cpu"]
                level[host], crossings[index] = _fill_level(
                    params, shape[host], shards_clean, capacity["cpu"][host], target_h
                )
                noise[host] = 1 + (noise[host] - 1) / 4
        used[resource] = level[:, None] * shape * noise + membership @ usage[resource]
    return used, crossings


def _fill_level(
    params: SkyParams, shape: np.ndarray, shards: np.ndarray, capacity: float, target_h: float
) -> tuple[float, int]:
    """Other tenants' load level making clean use first reach capacity ≈ target_h after end."""
    target = params.steps + int(target_h * 60 / params.step_minutes)

    def first_full(level: float) -> int:
        full = np.flatnonzero(level * shape + shards >= capacity)
        return int(full[0]) if len(full) else len(shape)

    low, high = 0.0, capacity
    for _ in range(50):
        middle = (low + high) / 2
        if first_full(middle) >= target:
            low = middle
        else:
            high = middle
    return low, first_full(low)


def _incidents(params: SkyParams, layout: Layout) -> tuple[list[Incident], Incident, Incident]:
    rng = rng_for(params, "incidents")
    providers = layout.providers
    incidents: list[Incident] = []
    names = (
        "Elevated API error rates",
        "Degraded network performance",
        "Delayed instance launches",
        "Increased storage latency",
    )
    for p in providers:
        for _ in range(rng.poisson(params.days / 7)):
            start = params.start + timedelta(minutes=int(rng.integers(0, (params.days - 1) * 1440)))
            incidents.append(
                Incident(
                    p.id,
                    random_id(rng),
                    "incident",
                    str(rng.choice(names)),
                    "minor",
                    start,
                    start + timedelta(minutes=int(rng.integers(20, 120))),
                    "resolved",
                    (str(rng.choice(COMPONENTS)),),
                )
            )
    outage_provider = next((p for p in providers if p.kind == "edge"), providers[-1])
    outage_start = _day_at(params.end, -5, 13, 20)
    outage = Incident(
        outage_provider.id,
        random_id(rng),
        "incident",
        f"Compute and network unavailable in {outage_provider.regions[0]}",
        "major",
        outage_start,
        outage_start + timedelta(hours=3, minutes=10),
        "resolved",
        ("Compute", "Network"),
    )
    maintained = next((p for p in providers if p.kind == "colo"), providers[0])
    maintenance_start = _day_at(params.end, -3, 2, 0)
    maintenance = Incident(
        maintained.id,
        random_id(rng),
        "maintenance",
        "Scheduled power and cooling maintenance",
        "maintenance",
        maintenance_start,
        maintenance_start + timedelta(hours=4),
        "completed",
        ("Compute",),
    )
    upcoming_start = _day_at(params.end, 2, 3, 0)
    upcoming = Incident(
        providers[0].id,
        random_id(rng),
        "maintenance",
        "Network upgrade",
        "maintenance",
        upcoming_start,
        upcoming_start + timedelta(hours=2),
        "scheduled",
        ("Network",),
    )
    incidents += [outage, maintenance, upcoming]
    return incidents, outage, maintenance


def _day_at(end: datetime, day_offset: int, hour: int, minute: int) -> datetime:
    day = datetime(end.year, end.month, end.day) + timedelta(days=day_offset)
    return day.replace(hour=hour, minute=minute)


def _latency(
    params: SkyParams, layout: Layout, seconds: np.ndarray, outage: Incident
) -> tuple[np.ndarray, np.ndarray]:
    """Round-trip times between providers: distance on a plane, daily congestion, jitter."""
    rng = rng_for(params, "latency")
    count = len(layout.providers)
    base = base_latency(rng, count)
    hour = (seconds % 86400) / 3600
    congestion = 1 + 0.1 * np.cos(2 * np.pi * (hour - 20) / 24)
    jitter = rng.lognormal(0, 0.05, (count, count, len(seconds)))
    series = base[:, :, None] * congestion[None, None, :] * jitter
    victim = next(i for i, p in enumerate(layout.providers) if p.id == outage.provider_id)
    during = _between(seconds, outage.start, outage.end)
    series[victim, :, during] *= 3
    series[:, victim, during] *= 3
    return series, base


def _between(seconds: np.ndarray, start: datetime, end: datetime | None) -> np.ndarray:
    low = start.replace(tzinfo=UTC).timestamp()
    high = end.replace(tzinfo=UTC).timestamp() if end else np.inf
    return (seconds >= low) & (seconds < high)


def _prices(params: SkyParams, layout: Layout) -> tuple[list[PriceSeries], dict]:
    """Hourly spot-like prices (calm for clouds, volatile for marketplaces), daily colo list."""
    rng = rng_for(params, "prices")
    start_s = int(params.start.replace(tzinfo=UTC).timestamp())
    hours = start_s + 3600 * np.arange(params.days * 24, dtype=np.int64)
    spike_provider = next(
        (p for p in layout.providers if p.kind == "marketplace"), layout.providers[0]
    )
    spike_start = _day_at(params.end, -4, 9, 0)
    spike = {
        "provider_id": spike_provider.id,
        "start": spike_start,
        "end": spike_start + timedelta(hours=6),
        "factor": 4.0,
    }
    result = []
    for p in layout.providers:
        if p.kind not in INSTANCE_TYPES:
            continue
        doc = next(d for d in layout.providers_doc["providers"] if d["id"] == p.id)
        zones = tuple(sorted({zone_of(p, j) for j in range(len(doc["hosts"]))}))
        types = dict(INSTANCE_TYPES[p.kind])
        per_cpu = doc["contract"]["price_per_cpu_hour"]
        if p.kind == "colo":
            price = np.full((len(zones), len(types), len(hours)), per_cpu)
        else:
            volatile = p.kind == "marketplace"
            phi, sigma = (0.9, 0.12) if volatile else (0.98, 0.02)
            steps = rng.normal(0, sigma, (len(zones), len(types), len(hours)))
            log_price = np.zeros_like(steps)
            for t in range(1, len(hours)):
                log_price[..., t] = phi * log_price[..., t - 1] + steps[..., t]
            discount = 1.0 if volatile else 0.4
            price = per_cpu * discount * np.exp(log_price)
        price = price * np.array(list(types.values()))[None, :, None]
        price *= rng.uniform(0.97, 1.03, (len(zones), 1, 1))
        if p.id == spike["provider_id"]:
            price[:, :, _between(hours, spike["start"], spike["end"])] *= spike["factor"]
        region = p.regions[0]
        result.append(PriceSeries(p.id, region, zones, types, hours, np.round(price, 6)))
    return result, spike


def _planted(
    world: World,
    growing: dict[int, float],
    crossings: dict[int, int],
    outage: Incident,
    maintenance: Incident,
    spike: dict,
) -> dict:
    def iso(moment: datetime) -> str:
        return moment.isoformat()

    def at(step: int) -> str:
        return iso(datetime.fromtimestamp(int(world.seconds[step]), UTC).replace(tzinfo=None))

    providers = [p.id for p in world.layout.providers]
    growing_rows = []
    for index in growing:
        shard = world.shards[index]
        host = world.host_ids.index(shard.current_host)
        growing_rows.append(
            {
                "shard_id": shard.id,
                "host_id": shard.current_host,
                "provider_id": world.host_provider[host],
                "metric": "cpu",
                "host_capacity": float(world.host_capacity["cpu"][host]),
                "growth_per_hour": round(
                    float(world.host_capacity["cpu"][host]) * GROWTH_SHARE_OF_HOST / RAMP_HOURS, 4
                ),
                "growth_started_at": iso(world.params.end - timedelta(hours=RAMP_HOURS)),
                "expected_crossing": at(crossings[index])
                if crossings[index] < len(world.seconds)
                else None,
            }
        )
    return {
        "params": world.params.to_json(),
        "window": {"start": iso(world.params.start), "end": iso(world.params.end)},
        "incidents": [_incident_json(outage)],
        "maintenances": [_incident_json(maintenance)],
        "price_spikes": [
            {
                "provider_id": spike["provider_id"],
                "start": iso(spike["start"]),
                "end": iso(spike["end"]),
                "factor": spike["factor"],
            }
        ],
        "growing_shards": growing_rows,
        "latency_ms": {
            "providers": providers,
            "base": {
                src: {dst: float(world.base_latency_ms[i, j]) for j, dst in enumerate(providers)}
                for i, src in enumerate(providers)
            },
            "incident_factor": 3.0,
        },
        "usage_via_csv": [p.id for p in world.layout.providers if p.usage_via_csv],
    }


def _incident_json(incident: Incident) -> dict:
    return {
        "provider_id": incident.provider_id,
        "incident_id": incident.incident_id,
        "name": incident.name,
        "impact": incident.impact,
        "start": incident.start.isoformat(),
        "end": incident.end.isoformat() if incident.end else None,
        "components": list(incident.components),
    }
