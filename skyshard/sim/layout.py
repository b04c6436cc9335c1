"""The configuration of a simulated sky: providers, hosts, workloads and their telemetry sources.

Everything here is plain data (dicts shaped like the YAML files), derived from SkyParams
alone, so the simulator and the `simulated` source agree on it without sharing state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import numpy as np

from skyshard.config.policy import Action
from skyshard.sim.params import SkyParams

KIND_CYCLE = ("cloud", "cloud", "cloud", "colo", "edge", "marketplace")
ID_PREFIX = {"cloud": "cloud", "colo": "colo", "edge": "edge", "marketplace": "market"}
CLOUD_REGIONS = (
    ("us-east-1", "us-east-2"),
    ("eu-west-1", "eu-central-1"),
    ("ap-southeast-1", "ap-northeast-1"),
    ("us-west-2", "ca-central-1"),
    ("eu-north-1", "eu-south-1"),
    ("sa-east-1", "us-west-1"),
)
OTHER_REGIONS = {
    "colo": (("fra-dc1",), ("ams-dc2",), ("lon-dc3",)),
    "edge": (("edge-eu", "edge-us"), ("edge-ap", "edge-sa")),
    "marketplace": (("mkt-eu",), ("mkt-us",)),
}
CAPACITY = {
    "cloud": {"cpu": 64, "mem_gb": 256, "gpu": 0, "net_mbps": 10000},
    "colo": {"cpu": 96, "mem_gb": 512, "gpu": 0, "net_mbps": 25000},
    "edge": {"cpu": 16, "mem_gb": 64, "gpu": 0, "net_mbps": 2000},
    "marketplace": {"cpu": 32, "mem_gb": 128, "gpu": 1, "net_mbps": 5000},
}
CONTRACT = {
    "cloud": {
        "price_basis": "spot",
        "price_per_cpu_hour": 0.034,
        "price_per_gb_hour": 0.004,
        "egress_per_gb": 0.09,
        "sla_availability": 0.999,
        "allowed_data_classes": ["public", "internal", "confidential"],
        "tier": "gold",
    },
    "colo": {
        "price_basis": "fixed",
        "price_per_cpu_hour": 0.025,
        "price_per_gb_hour": 0.002,
        "egress_per_gb": 0.01,
        "sla_availability": 0.995,
        "allowed_data_classes": ["public", "internal", "confidential", "restricted"],
        "tier": "silver",
    },
    "edge": {
        "price_basis": "on_demand",
        "price_per_cpu_hour": 0.06,
        "price_per_gb_hour": 0.006,
        "egress_per_gb": 0.02,
        "sla_availability": 0.99,
        "allowed_data_classes": ["public", "internal"],
        "tier": "bronze",
    },
    "marketplace": {
        "price_basis": "spot",
        "price_per_cpu_hour": 0.02,
        "price_per_gb_hour": 0.003,
        "egress_per_gb": 0.05,
        "sla_availability": 0.98,
        "allowed_data_classes": ["public", "internal"],
        "tier": "bronze",
    },
}
INSTANCE_TYPES = {
    "cloud": {"m5.large": 2, "m5.xlarge": 4, "c5.2xlarge": 8},
    "marketplace": {"gp.small": 2, "gp.medium": 4, "gp.large": 8},
    "colo": {"colo.small": 4, "colo.medium": 8, "colo.large": 16},
}
# (name, cpu per shard, mem_gb per shard, net_mbps per shard, state_gb per shard, class, deps)
WORKLOAD_TEMPLATES = (
    ("ledger-db", 2, 16, 100, 50, "confidential", ()),
    ("cache", 1, 8, 300, 4, "internal", ()),
    ("search", 2, 8, 100, 20, "internal", (("ledger-db", 40),)),
    ("ingest", 2, 4, 400, 5, "internal", (("ledger-db", 60),)),
    ("billing", 1, 4, 50, 10, "restricted", (("ledger-db", 100),)),
    ("api", 2, 4, 200, 1, "public", (("cache", 20), ("search", 50))),
)
SHARDS_PER_WORKLOAD = 8
LATENCY_HEADROOM = 1.4
"""Limits sit this far above the base latency of today's placement: p95 adds congestion (10 %)
and jitter (~9 %) on top of the base."""
SHARD_FILL = 0.55
"""Shards are placed until their requests fill this share of a host, leaving room for others."""

PROMETHEUS_QUERIES = {
    "shard_cpu": (
        "shard_usage",
        "cpu",
        'sum by (shard) (rate(container_cpu_usage_seconds_total{shard!=""}[5m]))',
    ),
    "shard_mem": (
        "shard_usage",
        "mem_gb",
        'sum by (shard) (container_memory_working_set_bytes{shard!=""}) / 1e9',
    ),
    "shard_net": (
        "shard_usage",
        "net_mbps",
        "sum by (shard) (rate(container_network_receive_bytes_total[5m])"
        " + rate(container_network_transmit_bytes_total[5m])) * 8 / 1e6",
    ),
    "host_cpu_capacity": (
        "host_metrics",
        "cpu_capacity",
        'count by (host) (node_cpu_seconds_total{mode="idle"})',
    ),
    "host_cpu_free": (
        "host_metrics",
        "cpu_free",
        'sum by (host) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
    ),
    "host_mem_capacity": ("host_metrics", "mem_gb_capacity", "node_memory_MemTotal_bytes / 1e9"),
    "host_mem_free": ("host_metrics", "mem_gb_free", "node_memory_MemAvailable_bytes / 1e9"),
    "host_net_capacity": (
        "host_metrics",
        "net_mbps_capacity",
        'max by (host) (node_network_speed_bytes{device="eth0"}) * 8 / 1e6',
    ),
    "host_net_free": (
        "host_metrics",
        "net_mbps_free",
        'max by (host) (node_network_speed_bytes{device="eth0"}'
        ' - rate(node_network_transmit_bytes_total{device="eth0"}[5m])) * 8 / 1e6',
    ),
    "probe_rtt": ("latency", None, 'probe_duration_seconds{job="blackbox-skyshard"}'),
}


@dataclass(frozen=True)
class ProviderLayout:
    id: str
    kind: str
    index: int
    regions: tuple[str, ...]
    host_ids: tuple[str, ...]
    usage_via_csv: bool
    spot_format: str | None
    """'json' or 'csv' for providers publishing spot prices, else None."""


@dataclass(frozen=True)
class Layout:
    """Providers, hosts and workloads of a simulated sky, as YAML-shaped dicts plus indexes."""

    providers: tuple[ProviderLayout, ...]
    providers_doc: dict
    workloads_doc: dict
    policy_doc: dict


def provider_layouts(params: SkyParams) -> list[ProviderLayout]:
    counters: dict[str, int] = {}
    layouts = []
    for index in range(params.providers):
        kind = KIND_CYCLE[index % len(KIND_CYCLE)]
        nth = counters.get(kind, 0)
        counters[kind] = nth + 1
        provider_id = f"{ID_PREFIX[kind]}-{_letters(nth)}"
        pool = CLOUD_REGIONS if kind == "cloud" else OTHER_REGIONS[kind]
        regions = pool[nth % len(pool)]
        host_ids = tuple(f"{provider_id}-h{j:02d}" for j in range(params.hosts_per_provider))
        spot_format = None
        if kind == "marketplace":
            spot_format = "json"
        elif kind == "cloud":
            spot_format = "csv" if nth == 1 else "json"
        layouts.append(
            ProviderLayout(provider_id, kind, index, regions, host_ids, kind == "colo", spot_format)
        )
    return layouts


def build_layout(params: SkyParams, captures: Path) -> Layout:
    """The three YAML documents of the sky; sources point at `captures/<provider>/...`."""
    providers = provider_layouts(params)
    providers_doc = {"providers": [_provider_doc(p, params, captures) for p in providers]}
    hosts = [
        (p, host)
        for p, doc in zip(providers, providers_doc["providers"], strict=True)
        for host in doc["hosts"]
    ]
    workloads = _workloads(params, hosts)
    _fit_latency_limits(workloads, hosts, base_latency(rng_for(params, "latency"), len(providers)))
    workloads_doc = {"workloads": workloads}
    policy_doc = _policy(providers)
    return Layout(tuple(providers), providers_doc, workloads_doc, policy_doc)


def _letters(n: int) -> str:
    text = ""
    n += 1
    while n:
        n, rem = divmod(n - 1, 26)
        text = chr(ord("a") + rem) + text
    return text


def _provider_doc(p: ProviderLayout, params: SkyParams, captures: Path) -> dict:
    base = captures / p.id
    hosts = [
        {
            "id": host_id,
            "region": p.regions[j % len(p.regions)],
            "address": "127.0.0.1",
            "port": params.port_base + p.index * params.hosts_per_provider + j,
            "user": "skyshard",
            "host_key": None,
            "capacity": dict(CAPACITY[p.kind]),
            "labels": {"zone": zone_of(p, j), "kind": p.kind},
        }
        for j, host_id in enumerate(p.host_ids)
    ]
    return {
        "id": p.id,
        "kind": p.kind,
        "regions": list(p.regions),
        "contract": dict(CONTRACT[p.kind]),
        "hosts": hosts,
        "sources": source_docs(p, base),
    }


def zone_of(p: ProviderLayout, host_index: int) -> str:
    region = p.regions[host_index % len(p.regions)]
    letter = "ab"[(host_index // len(p.regions)) % 2]
    return f"{region}{letter}" if p.kind == "cloud" else f"{region}-{letter}"


def source_docs(p: ProviderLayout, base: Path) -> list[dict]:
    """The telemetry sources of one provider, reading the captures under `base`."""
    queries = [
        {
            "name": name,
            "kind": kind,
            **({"metric": metric} if metric else {}),
            "query": query,
            **(
                {"src_label": "src_provider", "dst_label": "dst_provider"}
                if kind == "latency"
                else {}
            ),
        }
        for name, (kind, metric, query) in PROMETHEUS_QUERIES.items()
        if not (p.usage_via_csv and kind == "shard_usage")
    ]
    sources = [
        {
            "id": f"{p.id}-prometheus",
            "type": "prometheus",
            "url": (base / "prometheus").as_uri(),
            "params": {"step": 300, "queries": queries},
        },
        {"id": f"{p.id}-status", "type": "statuspage", "url": (base / "statuspage").as_uri()},
    ]
    if p.usage_via_csv:
        sources.append(
            {"id": f"{p.id}-usage", "type": "csv_usage", "url": (base / "usage.csv").as_uri()}
        )
    if p.spot_format:
        sources.append(
            {
                "id": f"{p.id}-spot",
                "type": "aws_spot_price_history",
                "url": (base / f"spot_price_history.{p.spot_format}").as_uri(),
                "params": {
                    "instance_types": {
                        name: {"cpu": cpu} for name, cpu in INSTANCE_TYPES[p.kind].items()
                    }
                },
            }
        )
    if p.kind == "colo":
        sources.append(
            {"id": f"{p.id}-prices", "type": "csv_prices", "url": (base / "prices.csv").as_uri()}
        )
    return sources


def _workloads(params: SkyParams, hosts: list[tuple[ProviderLayout, dict]]) -> list[dict]:
    """Workloads adding up to `params.shards` shards, placed greedily on hosts with room."""
    count = math.ceil(params.shards / SHARDS_PER_WORKLOAD)
    filled = {h["id"]: 0.0 for _, h in hosts}
    workloads = []
    for w in range(count):
        name, cpu, mem, net, state, data_class, deps = WORKLOAD_TEMPLATES[
            w % len(WORKLOAD_TEMPLATES)
        ]
        rnd = w // len(WORKLOAD_TEMPLATES)
        workload_id = _workload_id(name, rnd)
        n = min(SHARDS_PER_WORKLOAD, params.shards - w * SHARDS_PER_WORKLOAD)
        allowed = _hosts_allowing(hosts, data_class)
        if not allowed:  # a small sky may lack the one kind that takes this class
            data_class = "internal"
            allowed = _hosts_allowing(hosts, data_class)
        current = []
        for _ in range(n):
            unused = [(p, h) for p, h in allowed if h["id"] not in current] or allowed
            _, host = min(unused, key=lambda ph: (filled[ph[1]["id"]], ph[1]["id"]))
            filled[host["id"]] += cpu / (host["capacity"]["cpu"] * SHARD_FILL)
            current.append(host["id"])
        present = {t[0] for t in WORKLOAD_TEMPLATES[: min(6, count - rnd * 6)]}
        workloads.append(
            {
                "id": workload_id,
                "resources": {"cpu": cpu * n, "mem_gb": mem * n, "net_mbps": net * n},
                "state_gb": state * n,
                "shard_size": {"cpu": cpu},
                "runtime": {
                    "command": ["skyshard-demo-service", "--role", name],
                    "health_check": {"http_path": "/health", "port_name": "http"},
                },
                "endpoints": [{"name": "http", "port": 8080, "protocol": "http"}],
                "depends_on": [
                    {"workload": _workload_id(dep, rnd), "max_latency_ms": latency}
                    for dep, latency in deps
                    if dep in present
                ],
                "data_class": data_class,
                "current_hosts": current,
            }
        )
    return workloads


def base_latency(rng: np.random.Generator, count: int) -> np.ndarray:
    """Round-trip times between providers (ms): distance on a plane, ~1 ms inside a provider.

    Draws first from the "latency" stream, so the layout and the world agree on it."""
    position = rng.uniform(0, 100, (count, 2))
    distance = np.linalg.norm(position[:, None, :] - position[None, :, :], axis=2)
    base = np.round(3 + 1.2 * distance, 1)
    base[np.arange(count), np.arange(count)] = np.round(rng.uniform(0.4, 1.5, count), 2)
    return base


def _fit_latency_limits(
    workloads: list[dict], hosts: list[tuple[ProviderLayout, dict]], base: np.ndarray
) -> None:
    """Raise each dependency's limit to what today's placement needs, with headroom.

    Operators deployed the demo sky respecting its limits, so the starting placement is
    feasible; the limits still bind any move to a farther provider."""
    provider_of = {h["id"]: p.index for p, h in hosts}
    placed = {w["id"]: {provider_of[h] for h in w["current_hosts"]} for w in workloads}
    for workload in workloads:
        for dependency in workload["depends_on"]:
            worst = max(
                base[a, b] for a in placed[workload["id"]] for b in placed[dependency["workload"]]
            )
            needed = 5 * math.ceil(LATENCY_HEADROOM * worst / 5)
            dependency["max_latency_ms"] = max(dependency["max_latency_ms"], needed)


def _hosts_allowing(
    hosts: list[tuple[ProviderLayout, dict]], data_class: str
) -> list[tuple[ProviderLayout, dict]]:
    return [(p, h) for p, h in hosts if data_class in CONTRACT[p.kind]["allowed_data_classes"]]


def _workload_id(name: str, rnd: int) -> str:
    return name if rnd == 0 else f"{name}-{rnd}"


def _policy(providers: list[ProviderLayout]) -> dict:
    return {
        "forecast": {"horizon_hours": 24, "interval": 0.9, "backtest_cutoffs": 7},
        "planning": {"max_moves_per_cycle": 10, "min_saving_per_day": 1.0},
        # Every provider starts at the neutral trust score (0.5): the thresholds let it place
        # sensitive data until the ledger's evidence moves a provider below them.
        "data_classes": {
            "confidential": {"min_trust": 0.4},
            "restricted": {
                "min_trust": 0.5,
                "allowed_providers": [p.id for p in providers if p.kind == "colo"] or None,
            },
        },
        "operators": [
            {"id": "ops", "grants": [{"provider": "*", "actions": ["read_telemetry"]}]},
            {
                "id": "broker",
                "grants": [
                    {
                        "provider": "*",
                        "actions": list(get_args(Action)),
                    }
                ],
            },
        ],
        "payment": {
            p.id: {"price_cap_per_cpu_hour": 0.12, "monthly_budget": 5000.0} for p in providers
        },
    }


def rng_for(params: SkyParams, stream: str) -> np.random.Generator:
    """An independent, reproducible random stream per named purpose."""
    key = [params.seed, *stream.encode()]
    return np.random.default_rng(key)


def random_id(rng: np.random.Generator) -> str:
    """A Statuspage-style 12-character lowercase id."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), 12))
