"""The configured sky as tables (`raw.sky_*`), so dbt can join telemetry to providers and shards."""

from __future__ import annotations

import json
from collections.abc import Mapping

import polars as pl

from skyshard.config.sky import Sky


def provider_frame(sky: Sky) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "provider_id": p.id,
                "kind": p.kind,
                "regions": list(p.regions),
                "price_basis": p.contract.price_basis,
                "list_price_per_cpu_hour": p.contract.price_per_cpu_hour,
                "list_price_per_gb_hour": p.contract.price_per_gb_hour,
                "list_price_per_gpu_hour": p.contract.price_per_gpu_hour,
                "egress_per_gb": p.contract.egress_per_gb,
                "sla_availability": p.contract.sla_availability,
                "allowed_data_classes": list(p.contract.allowed_data_classes),
                "tier": p.contract.tier,
                "price_cap_per_cpu_hour": _price_cap(sky, p.id),
                "source_ids": [s.id for s in p.sources],
            }
            for p in sky.providers
        ],
        schema_overrides={"price_cap_per_cpu_hour": pl.Float64},
    )


def host_frame(sky: Sky) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "host_id": h.id,
                "provider_id": p.id,
                "region": h.region,
                "address": h.address,
                "port": h.port,
                "ssh_user": h.user,
                "has_pinned_host_key": h.host_key is not None,
                "cpu": h.capacity.cpu,
                "mem_gb": h.capacity.mem_gb,
                "gpu": h.gpu_capacity,
                "net_mbps": h.capacity.net_mbps,
                "gpu_devices": h.gpus.count if h.gpus else None,
                "gpu_model": h.gpus.model if h.gpus else None,
                "gpu_memory_gb": h.gpus.memory_gb if h.gpus else None,
                "labels": json.dumps(h.labels, sort_keys=True),
            }
            for p in sky.providers
            for h in p.hosts
        ],
        schema_overrides={
            "gpu_devices": pl.Int64,
            "gpu_model": pl.String,
            "gpu_memory_gb": pl.Float64,
        },
    )


def shard_frame(sky: Sky, routed: Mapping[str, str]) -> pl.DataFrame:
    """Shards as configured, except that a shard the routing table places on a known host
    is there now: after a migration, planning starts from where the shard really runs."""
    return pl.DataFrame(
        [
            {
                "shard_id": s.id,
                "workload_id": s.workload_id,
                "shard_index": s.index,
                "cpu": s.resources.cpu,
                "mem_gb": s.resources.mem_gb,
                "gpu": s.resources.gpu,
                "net_mbps": s.resources.net_mbps,
                "state_gb": s.state_gb,
                "data_class": s.data_class,
                "current_host_id": _placed_on(sky, routed, s.id),
                "allowed_providers": s.placement.allowed_providers,
                "allowed_regions": s.placement.allowed_regions,
                "anti_affinity": s.placement.anti_affinity,
                "endpoints": json.dumps([e.model_dump() for e in s.endpoints]),
                "command": json.dumps(list(s.runtime.command)),
            }
            for s in sky.shards
        ],
        schema_overrides={
            "allowed_providers": pl.List(pl.String),
            "allowed_regions": pl.List(pl.String),
        },
    )


def dependency_frame(sky: Sky) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "shard_id": s.id,
                "depends_on_shard_id": d.shard_id,
                "max_latency_ms": d.max_latency_ms,
            }
            for s in sky.shards
            for d in s.depends_on
        ],
        schema={
            "shard_id": pl.String,
            "depends_on_shard_id": pl.String,
            "max_latency_ms": pl.Float64,
        },
    )


def sky_frames(sky: Sky, routed: Mapping[str, str]) -> dict[str, pl.DataFrame]:
    """Table name (in schema raw) → frame; `routed` maps each migrated shard to the host the
    routing table says it runs on now."""
    return {
        "sky_providers": provider_frame(sky),
        "sky_hosts": host_frame(sky),
        "sky_shards": shard_frame(sky, routed),
        "sky_shard_dependencies": dependency_frame(sky),
    }


def _placed_on(sky: Sky, routed: Mapping[str, str], shard_id: str) -> str:
    host = routed.get(shard_id)
    return host if host in sky.hosts else sky.shard_by_id[shard_id].current_host


def _price_cap(sky: Sky, provider_id: str) -> float | None:
    terms = sky.policy.payment.get(provider_id)
    return terms.price_cap_per_cpu_hour if terms else None
