from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

PROVIDERS = {
    "providers": [
        {
            "id": "aws",
            "kind": "cloud",
            "regions": ["us-east-1"],
            "contract": {
                "price_per_cpu_hour": 0.04,
                "allowed_data_classes": ["public", "internal", "confidential"],
            },
            "hosts": [
                {
                    "id": "aws-h1",
                    "region": "us-east-1",
                    "address": "127.0.0.1",
                    "port": 2201,
                    "host_key": (
                        "ssh-ed25519 "
                        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
                    ),
                    "capacity": {"cpu": 32, "mem_gb": 128, "net_mbps": 10000},
                }
            ],
        },
        {
            "id": "colo",
            "kind": "colo",
            "regions": ["fra"],
            "contract": {"price_per_cpu_hour": 0.02, "price_basis": "fixed"},
            "hosts": [
                {
                    "id": "colo-h1",
                    "region": "fra",
                    "address": "127.0.0.1",
                    "capacity": {"cpu": 16, "mem_gb": 64, "net_mbps": 1000},
                }
            ],
        },
    ]
}

WORKLOADS = {
    "workloads": [
        {
            "id": "db",
            "resources": {"cpu": 4, "mem_gb": 16},
            "state_gb": 100,
            "shard_size": {"cpu": 2},
            "runtime": {"command": ["skyshard-kv", "--port", "8080"]},
            "current_hosts": ["aws-h1"],
        },
        {
            "id": "web",
            "resources": {"cpu": 16, "mem_gb": 64},
            "state_gb": 400,
            "shard_size": {"cpu": 2},
            "runtime": {"command": ["skyshard-kv"]},
            "endpoints": [{"name": "http", "port": 8080, "protocol": "http"}],
            "depends_on": [{"workload": "db", "max_latency_ms": 20}],
            "current_hosts": ["aws-h1", "colo-h1"],
        },
    ]
}

POLICY = {
    "planning": {"max_moves_per_cycle": 5},
    "operators": [{"id": "broker", "grants": [{"provider": "*", "actions": ["read_telemetry"]}]}],
    "payment": {"aws": {"price_cap_per_cpu_hour": 0.1}},
}


def write_home(home: Path, providers=PROVIDERS, workloads=WORKLOADS, policy=POLICY) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    for name, document in (
        ("providers.yaml", providers),
        ("workloads.yaml", workloads),
        ("policy.yaml", policy),
    ):
        if document is not None:
            (home / name).write_text(yaml.safe_dump(document, sort_keys=False))
    return home


@pytest.fixture
def documents():
    """Deep copies of the valid documents, for a test to break."""
    return copy.deepcopy(PROVIDERS), copy.deepcopy(WORKLOADS), copy.deepcopy(POLICY)
