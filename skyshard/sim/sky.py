"""Write a simulated sky into a folder: the three YAML files, captures and `planted.json`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import yaml

from skyshard.sim.formats import (
    aws_time,
    csv_bytes,
    iso_z,
    prometheus_matrix,
    spot_json,
    statuspage_time,
)
from skyshard.sim.hosts import embed_hosts, write_sky_keys
from skyshard.sim.layout import build_layout, random_id, rng_for
from skyshard.sim.params import SkyParams
from skyshard.sim.world import COMPONENTS, RESOURCES, Incident, PriceSeries, World, build_world

PLANTED_FILE = "planted.json"
CAPTURES_DIR = "captures"
HOST_QUERY = {
    "cpu": ("host_cpu_capacity", "host_cpu_free"),
    "mem_gb": ("host_mem_capacity", "host_mem_free"),
    "net_mbps": ("host_net_capacity", "host_net_free"),
}
SHARD_QUERY = {"cpu": "shard_cpu", "mem_gb": "shard_mem", "net_mbps": "shard_net"}
DECIMALS = {"cpu": 4, "mem_gb": 3, "net_mbps": 2}
PAGE_UTC_OFFSET = {"cloud": 0, "colo": 1, "edge": -5, "marketplace": 0}


@dataclass(frozen=True)
class SkyManifest:
    """What write_sky produced."""

    home: Path
    params: SkyParams
    start: datetime
    end: datetime
    provider_ids: tuple[str, ...]
    host_count: int
    shard_count: int
    files: tuple[Path, ...]
    planted: dict


def simulate(params: SkyParams, captures: Path) -> World:
    """The sky's configuration and series; sources point at `captures` (not written yet)."""
    return build_world(params, build_layout(params, captures.resolve()))


def write_sky(params: SkyParams, home: Path) -> SkyManifest:
    """Write providers/workloads/policy YAML, every provider's captures and planted.json, and
    the embedded hosts' keys (random, unlike everything else; see `skyshard.sim.hosts`)."""
    home.mkdir(parents=True, exist_ok=True)
    world = simulate(params, home / CAPTURES_DIR)
    keys = write_sky_keys(home, list(world.host_ids))
    providers_doc = embed_hosts(world.layout.providers_doc, home, keys.host_keys)
    files = [
        *keys.files,
        _write(home / "providers.yaml", _yaml(providers_doc, _PROVIDERS_HEADER)),
        _write(home / "workloads.yaml", _yaml(world.layout.workloads_doc, _WORKLOADS_HEADER)),
        _write(home / "policy.yaml", _yaml(world.layout.policy_doc, _POLICY_HEADER)),
    ]
    for provider in world.layout.providers:
        files += write_provider_captures(world, provider.id, home / CAPTURES_DIR / provider.id)
    files.append(
        _write(home / PLANTED_FILE, orjson.dumps(world.planted, option=orjson.OPT_INDENT_2))
    )
    return SkyManifest(
        home=home,
        params=params,
        start=params.start,
        end=params.end,
        provider_ids=tuple(p.id for p in world.layout.providers),
        host_count=len(world.host_ids),
        shard_count=len(world.shards),
        files=tuple(files),
        planted=world.planted,
    )


def write_provider_captures(world: World, provider_id: str, folder: Path) -> list[Path]:
    """One provider's captures in the real formats, as its sources in providers.yaml expect."""
    provider = world.provider(provider_id)
    files = _prometheus(world, provider_id, provider.usage_via_csv, folder / "prometheus")
    files += _statuspage(world, provider_id, folder / "statuspage")
    if provider.usage_via_csv:
        files.append(_write(folder / "usage.csv", _usage_csv(world, provider_id)))
    prices = next((p for p in world.prices if p.provider_id == provider_id), None)
    if prices is not None and provider.spot_format:
        rows = _spot_rows(prices)
        body = spot_json(rows) if provider.spot_format == "json" else csv_bytes(rows)
        files.append(_write(folder / f"spot_price_history.{provider.spot_format}", body))
    elif prices is not None:
        files.append(_write(folder / "prices.csv", _price_list_csv(prices)))
    return files


def _prometheus(world: World, provider_id: str, usage_via_csv: bool, folder: Path) -> list[Path]:
    observed = slice(0, world.observed)
    seconds = world.seconds[observed]
    files = []
    hosts = [i for i, p in enumerate(world.host_provider) if p == provider_id]
    host_labels = [
        {
            "host": world.host_ids[i],
            "instance": f"10.0.{i // 250}.{i % 250 + 1}:9100",
            "job": "node",
        }
        for i in hosts
    ]
    for resource, (capacity_name, free_name) in HOST_QUERY.items():
        capacity = np.repeat(world.host_capacity[resource][hosts, None], len(seconds), axis=1)
        free = world.host_free(resource)[hosts, observed]
        for name, values in ((capacity_name, capacity), (free_name, free)):
            body = prometheus_matrix(host_labels, seconds, values, DECIMALS[resource])
            files.append(_write(folder / f"{name}.json", body))
    if not usage_via_csv:
        on_provider = _shards_on(world, provider_id)
        labels = [{"shard": world.shards[i].id} for i in on_provider]
        for resource, name in SHARD_QUERY.items():
            values = world.shard_usage[resource][on_provider, observed]
            body = prometheus_matrix(labels, seconds, values, DECIMALS[resource])
            files.append(_write(folder / f"{name}.json", body))
    providers = [p.id for p in world.layout.providers]
    src = providers.index(provider_id)
    probe_labels = [
        {
            "__name__": "probe_duration_seconds",
            "instance": f"probe.{dst}.example:443",
            "job": "blackbox-skyshard",
            "src_provider": provider_id,
            "dst_provider": dst,
        }
        for dst in providers
    ]
    rtt_seconds = world.latency_ms[src, :, observed] / 1000
    files.append(
        _write(folder / "probe_rtt.json", prometheus_matrix(probe_labels, seconds, rtt_seconds, 6))
    )
    return files


def _shards_on(world: World, provider_id: str) -> list[int]:
    hosts = {
        h for h, p in zip(world.host_ids, world.host_provider, strict=True) if p == provider_id
    }
    return [i for i, s in enumerate(world.shards) if s.current_host in hosts]


def _usage_csv(world: World, provider_id: str) -> bytes:
    on_provider = _shards_on(world, provider_id)
    seconds = world.seconds[: world.observed]
    stamps = iso_z(seconds)
    frames = [
        pl.DataFrame(
            {
                "timestamp": pl.concat([stamps] * len(on_provider)) if on_provider else [],
                "shard_id": np.repeat([world.shards[i].id for i in on_provider], len(seconds)),
                "metric": resource,
                "value": world.shard_usage[resource][on_provider, : world.observed]
                .ravel()
                .round(DECIMALS[resource]),
            },
            schema={
                "timestamp": pl.String,
                "shard_id": pl.String,
                "metric": pl.String,
                "value": pl.Float64,
            },
        )
        for resource in RESOURCES
    ]
    return csv_bytes(pl.concat(frames))


def _spot_rows(prices: PriceSeries) -> pl.DataFrame:
    """AWS spot history rows, newest first as the API returns them."""
    zones, types, hours = prices.price.shape
    return pl.DataFrame(
        {
            "AvailabilityZone": np.repeat(prices.zones, types * hours),
            "InstanceType": np.tile(np.repeat(list(prices.instance_types), hours), zones),
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": [f"{p:.6f}" for p in prices.price.ravel()],
            "Timestamp": pl.concat([aws_time(prices.hours)] * (zones * types)),
        }
    ).sort(["Timestamp", "AvailabilityZone", "InstanceType"], descending=[True, False, False])


def _price_list_csv(prices: PriceSeries) -> bytes:
    """A colo's daily price list: one row per day and instance type (price per instance-hour)."""
    daily = slice(0, None, 24)
    days = prices.hours[daily]
    rows = pl.DataFrame(
        {
            "timestamp": pl.concat([iso_z(days)] * len(prices.instance_types)),
            "region": prices.region,
            "instance_type": np.repeat(list(prices.instance_types), len(days)),
            "price": prices.price[0, :, daily].ravel(),
            "cpu_per_instance": np.repeat(list(prices.instance_types.values()), len(days)),
        }
    )
    return csv_bytes(rows.with_columns(pl.col("cpu_per_instance").cast(pl.Float64)))


def _statuspage(world: World, provider_id: str, folder: Path) -> list[Path]:
    provider = world.provider(provider_id)
    offset = PAGE_UTC_OFFSET[provider.kind]
    rng = rng_for(world.params, f"statuspage-{provider_id}")
    end = world.params.end

    def when(moment: datetime | None) -> str | None:
        return None if moment is None else statuspage_time(moment, offset)

    page_id = random_id(rng)
    page = {
        "id": page_id,
        "name": provider_id,
        "url": f"https://status.{provider_id}.example",
        "time_zone": "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}",
        "updated_at": when(end),
    }
    components = [
        {
            "id": random_id(rng),
            "name": name,
            "status": "operational",
            "created_at": when(world.params.start),
            "updated_at": when(end),
            "position": position,
            "description": None,
            "showcase": True,
            "start_date": None,
            "group_id": None,
            "page_id": page_id,
            "group": False,
            "only_show_if_degraded": False,
        }
        for position, name in enumerate(COMPONENTS, start=1)
    ]
    by_name = {c["name"]: c for c in components}
    own = [i for i in world.incidents if i.provider_id == provider_id]
    incidents = [_incident_doc(i, when, by_name, page_id, rng) for i in own if i.kind == "incident"]
    maintenances = [
        _incident_doc(i, when, by_name, page_id, rng) for i in own if i.kind == "maintenance"
    ]
    incidents.sort(key=lambda doc: _posted_at(doc, "created_at"), reverse=True)
    maintenances.sort(key=lambda doc: _posted_at(doc, "scheduled_for"), reverse=True)
    active = [m for m in maintenances if m["status"] in ("scheduled", "in_progress", "verifying")]
    open_incidents = [i for i in incidents if i["status"] not in ("resolved", "postmortem")]
    summary = {
        "page": page,
        "components": components,
        "incidents": open_incidents,
        "scheduled_maintenances": active,
        "status": {"indicator": "none", "description": "All Systems Operational"},
    }
    documents = {
        "summary.json": summary,
        "incidents.json": {"page": page, "incidents": incidents},
        "scheduled-maintenances.json": {"page": page, "scheduled_maintenances": maintenances},
    }
    return [
        _write(folder / "api" / "v2" / name, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        for name, doc in documents.items()
    ]


def _posted_at(doc: dict, key: str) -> float:
    return datetime.fromisoformat(doc[key]).timestamp() if doc[key] else 0.0


def _incident_doc(incident: Incident, when, by_name: dict, page_id: str, rng) -> dict:
    maintenance = incident.kind == "maintenance"
    created = incident.start if not maintenance else incident.start.replace(hour=0, minute=0)
    if maintenance:
        created = created - timedelta(days=7)
    resolved = incident.end if incident.status in ("resolved", "completed") else None
    updates = [
        {
            "id": random_id(rng),
            "status": "investigating" if not maintenance else "scheduled",
            "body": f"{'Investigating' if not maintenance else 'Planned'}: {incident.name}.",
            "created_at": when(created),
            "updated_at": when(created),
            "display_at": when(created),
        }
    ]
    if resolved is not None:
        updates.insert(
            0,
            {
                "id": random_id(rng),
                "status": incident.status,
                "body": "This incident has been resolved."
                if not maintenance
                else "The scheduled maintenance has been completed.",
                "created_at": when(resolved),
                "updated_at": when(resolved),
                "display_at": when(resolved),
            },
        )
    return {
        "id": incident.incident_id,
        "name": incident.name,
        "status": incident.status,
        "created_at": when(created),
        "updated_at": when(resolved or created),
        "monitoring_at": None,
        "resolved_at": when(resolved),
        "impact": incident.impact,
        "shortlink": f"https://stspg.io/{incident.incident_id[:6]}",
        "started_at": when(incident.start),
        "page_id": page_id,
        "incident_updates": updates,
        "components": [dict(by_name[name], status="operational") for name in incident.components],
        **(
            {"scheduled_for": when(incident.start), "scheduled_until": when(incident.end)}
            if maintenance
            else {}
        ),
    }


def _write(path: Path, body: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body.encode() if isinstance(body, str) else body)
    return path


def _yaml(document: dict, header: str) -> str:
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=100)


_PROVIDERS_HEADER = """\
# Simulated provider networks (skyshard demo sky). Generated by skyshard.sim.write_sky.
# Sources read saved captures under captures/ in the real formats. Every host is an embedded
# SSH server (python -m skyshard.embedded_hosts --home <this folder>) whose key under
# keys/hosts/ is pinned in host_key; its shards, chunks and helpers live in its root folder.
"""
_WORKLOADS_HEADER = """\
# Simulated workloads; each splits into shards of shard_size and runs on current_hosts
# (one entry per shard, in shard order). Generated by skyshard.sim.write_sky.
"""
_POLICY_HEADER = "# Policy of the simulated sky. Generated by skyshard.sim.write_sky.\n"
