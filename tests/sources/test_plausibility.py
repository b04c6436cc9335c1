"""Plausibility bounds: impossible but well-formed rows go to quarantine with the reason."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from skyshard.config import load_sky
from skyshard.sources.frames import rows_frame
from skyshard.sources.plausibility import Bounds, set_aside_implausible
from tests.config.conftest import write_home

NOW = datetime(2026, 11, 30, 12)


@pytest.fixture
def bounds(tmp_path) -> Bounds:
    # hosts: aws-h1 with 32 cpu / 128 GB / 10000 Mbit/s, colo-h1 with 16 cpu; aws at 0.04
    return Bounds.of(load_sky(write_home(tmp_path)), NOW)


def usage(value: float, ts: datetime = NOW, metric: str = "cpu") -> dict:
    return {"provider_id": "aws", "shard_id": "db-000", "metric": metric, "ts": ts, "value": value}


def check(bounds, table: str, rows: list[dict]):
    kept, quarantine = set_aside_implausible({table: rows_frame(table, rows)}, bounds)
    return kept[table], [q.reason for q in quarantine]


def test_shard_usage_against_the_largest_host_and_the_clock(bounds):
    kept, reasons = check(
        bounds,
        "shard_usage",
        [
            usage(2.0),
            usage(1e308),
            usage(129.0),
            usage(128.0, ts=NOW - timedelta(minutes=5)),
            usage(1.0, ts=datetime(2199, 12, 31)),
            usage(1.0, ts=datetime(2020, 1, 1)),
            usage(1e6, metric="gpu"),  # no host declares GPUs: no bound to apply
        ],
    )
    assert kept["value"].to_list() == [2.0, 128.0, 1e6]
    assert reasons[0].startswith("value 1e+308 exceeds 4.0 x the largest host capacity for cpu")
    assert reasons[1].startswith("value 129.0 exceeds")
    assert reasons[2].startswith("timestamp in the future (after 2026-11-30 13:00:00")
    assert reasons[3].startswith("timestamp before the retention window")


def test_host_metrics_against_their_own_host(bounds):
    def metric(host: str, name: str, value: float) -> dict:
        return {"provider_id": "aws", "host_id": host, "metric": name, "ts": NOW, "value": value}

    kept, reasons = check(
        bounds,
        "host_metrics",
        [
            metric("aws-h1", "cpu_capacity", 100.0),
            metric("colo-h1", "cpu_capacity", 100.0),
            metric("colo-h1", "mem_gb_free", 1e300),
        ],
    )
    assert kept.rows() == [("aws", "aws-h1", "cpu_capacity", NOW, 100.0)]
    assert "declared capacity of host colo-h1 (64.0)" in reasons[0]
    assert "1e+300" in reasons[1]


def test_prices_latency_and_incidents(bounds):
    price = {
        "provider_id": "aws",
        "region": "us-east-1",
        "zone": "us-east-1a",
        "instance_type": "m5.large",
        "product": "Linux/UNIX",
        "ts": NOW,
        "price": 0.08,
        "cpu_per_instance": 2.0,
        "mem_gb_per_instance": None,
    }
    kept, reasons = check(bounds, "prices", [price, dict(price, price=9.0)])
    assert kept["price"].to_list() == [0.08]
    assert reasons == ["price per cpu-hour 4.5 exceeds 100.0 x the contract price (4.0)"]
    rtt = {"src_provider_id": "aws", "dst_provider_id": "colo", "ts": NOW, "rtt_ms": 1e9}
    assert check(bounds, "latency", [rtt])[1] == ["rtt_ms exceeds 60000 ms"]

    def incident(kind: str, start: datetime) -> dict:
        return (
            {
                "provider_id": "aws",
                "incident_id": f"{kind}-{start:%Y}",
                "kind": kind,
                "started_at": start,
                "components": [],
                "regions": [],
            }
            | {k: None for k in ("name", "status", "impact", "resolved_at", "updated_at")}
            | {"scheduled_until": None}
        )

    kept, reasons = check(
        bounds,
        "incidents",
        [
            incident("incident", datetime(2199, 1, 1)),
            incident("maintenance", NOW + timedelta(days=30)),
            incident("maintenance", datetime(2199, 1, 1)),
        ],
    )
    assert kept["incident_id"].to_list() == ["maintenance-2026"]
    assert reasons[0].startswith("incident starts in the future")
    assert reasons[1].startswith("maintenance starts more than a year ahead")
