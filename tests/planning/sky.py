"""A tiny marts-shaped sky built in memory, so planning tests control every number.

Providers: `cheap` (hosts cheap-1, cheap-2 in eu; price 0.02 per cpu-hour, cap 0.05) and
`pricey` (pricey-1 in us; 0.05). Shards web-000 and web-001 run on cheap-1, db-000 on
pricey-1; both web shards depend on db-000 (limit 50 ms); cheap <-> pricey is 30 ms.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from skyshard.scoring import PlanningData

AS_OF = datetime(2026, 11, 27, 23)
HOURS = 72


def hours(n: int = HOURS) -> list[datetime]:
    return [AS_OF - timedelta(hours=n - 1 - i) for i in range(n)]


def providers() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "provider_id": ["cheap", "pricey"],
            "list_price_per_cpu_hour": [0.02, 0.05],
            "list_price_per_gb_hour": [0.001, 0.002],
            "list_price_per_gpu_hour": [0.0, 0.0],
            "egress_per_gb": [0.05, 0.08],
            "allowed_data_classes": [
                ["public", "internal"],
                ["public", "internal", "confidential"],
            ],
            "price_cap_per_cpu_hour": [0.05, None],
        }
    )


def hosts() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "host_id": ["cheap-1", "cheap-2", "pricey-1"],
            "provider_id": ["cheap", "cheap", "pricey"],
            "region": ["eu", "eu", "us"],
            "cpu_capacity": [8.0, 8.0, 16.0],
            "mem_gb_capacity": [32.0, 32.0, 64.0],
            "gpu_capacity": [0.0, 0.0, 0.0],
            "net_mbps_capacity": [1000.0, 1000.0, 1000.0],
        }
    )


def shards() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "shard_id": ["db-000", "web-000", "web-001"],
            "workload_id": ["db", "web", "web"],
            "cpu_request": [4.0, 2.0, 2.0],
            "mem_gb_request": [16.0, 4.0, 4.0],
            "gpu_request": [0.0, 0.0, 0.0],
            "net_mbps_request": [100.0, 50.0, 50.0],
            "state_gb": [50.0, 10.0, 10.0],
            "data_class": ["confidential", "internal", "internal"],
            "current_host_id": ["pricey-1", "cheap-1", "cheap-1"],
            "current_provider_id": ["pricey", "cheap", "cheap"],
            "current_region": ["us", "eu", "eu"],
            "allowed_providers": [None, None, None],
            "allowed_regions": [None, None, None],
            "anti_affinity": [False, False, False],
        },
        schema_overrides={
            "allowed_providers": pl.List(pl.String),
            "allowed_regions": pl.List(pl.String),
        },
    )


def dependencies() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "shard_id": ["web-000", "web-001"],
            "depends_on_shard_id": ["db-000", "db-000"],
            "max_latency_ms": [50.0, 50.0],
        }
    )


def usage(cpu: dict[str, np.ndarray] | None = None, n: int = HOURS) -> pl.DataFrame:
    """Flat usage (db 3 cpu, web 1.5 cpu each) unless `cpu` gives a shard's hourly series."""
    cpu = cpu or {}
    base = {"db-000": 3.0, "web-000": 1.5, "web-001": 1.5}
    placed = {
        "db-000": ("pricey-1", "pricey"),
        "web-000": ("cheap-1", "cheap"),
        "web-001": ("cheap-1", "cheap"),
    }
    frames = []
    for shard_id, level in base.items():
        values = cpu.get(shard_id, np.full(n, level))
        frames.append(
            pl.DataFrame(
                {
                    "shard_id": shard_id,
                    "host_id": placed[shard_id][0],
                    "provider_id": placed[shard_id][1],
                    "hour": hours(n),
                    "cpu_avg": np.asarray(values, dtype=float),
                    "mem_gb_avg": np.full(n, 2.0),
                    "net_mbps_avg": np.full(n, 10.0),
                }
            )
        )
    return pl.concat(frames)


def capacity(use: pl.DataFrame) -> pl.DataFrame:
    """Host free capacity = configured capacity - our shards' usage (no other tenants)."""
    used = use.group_by("host_id", "hour").agg(
        pl.col("cpu_avg").sum(), pl.col("mem_gb_avg").sum(), pl.col("net_mbps_avg").sum()
    )
    grid = hosts().join(pl.DataFrame({"hour": sorted(use["hour"].unique())}), how="cross")
    return (
        grid.join(used, on=["host_id", "hour"], how="left")
        .fill_null(0.0)
        .select(
            "host_id",
            "provider_id",
            "region",
            "hour",
            "cpu_capacity",
            cpu_free=pl.col("cpu_capacity") - pl.col("cpu_avg"),
            mem_gb_free=pl.col("mem_gb_capacity") - pl.col("mem_gb_avg"),
            net_mbps_free=pl.col("net_mbps_capacity") - pl.col("net_mbps_avg"),
        )
    )


def prices(n: int = HOURS, pricey: float = 0.05, cheap: float = 0.02) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "provider_id": ["cheap"] * n + ["pricey"] * n,
            "region": ["eu"] * n + ["us"] * n,
            "hour": hours(n) * 2,
            "price_per_cpu_hour": [cheap] * n + [pricey] * n,
        }
    )


def incidents(pricey_minutes: float = 144.0, cheap_open: bool = False) -> pl.DataFrame:
    """Per provider region and day, as marts.fct_region_incidents has them."""
    days = [date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)]
    return pl.DataFrame(
        {
            "provider_id": ["cheap"] * 3 + ["pricey"] * 3,
            "region": ["eu"] * 3 + ["us"] * 3,
            "day": days * 2,
            "incident_minutes": [0.0, 0.0, 0.0, pricey_minutes, 0.0, 0.0],
            "has_open_incident": [False, False, cheap_open, False, False, False],
        }
    )


def latency() -> pl.DataFrame:
    return pl.DataFrame(
        {"src_provider_id": ["cheap"], "dst_provider_id": ["pricey"], "p95_ms": [30.0]}
    )


def planning_data(**overrides: pl.DataFrame) -> PlanningData:
    use = overrides.pop("usage", None)
    use = usage() if use is None else use
    parts = {
        "providers": providers(),
        "hosts": hosts(),
        "shards": shards(),
        "dependencies": dependencies(),
        "usage": use,
        "capacity": capacity(use),
        "prices": prices(),
        "incidents": incidents(),
        "latency": latency(),
    }
    parts.update(overrides)
    return PlanningData(**parts)
