"""A two-provider sky whose hosts are real sshd test hosts, and plan rows to migrate in it."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from skyshard.config.policy import Action
from skyshard.db import connect
from skyshard.plans.store import decide, ensure_plan_schema
from skyshard.transport.access import ACTIONS
from tests.support.hosts import TestHost, shared_transfer_ca

PROVIDERS = {"host-a": "prov-a", "host-b": "prov-b"}
WORKLOAD = "kv"


@dataclass
class SkyFiles:
    """What a test may change in the sky before writing it."""

    host_keys: dict[str, str | None]
    grants: dict[str, list[Action]] = field(
        default_factory=lambda: {provider: sorted(ACTIONS) for provider in PROVIDERS.values()}
    )


def write_sky(
    home: Path, hosts: dict[str, TestHost], roots: dict[str, Path], client_key: Path,
    files: SkyFiles,
) -> None:  # fmt: skip
    """providers.yaml (pinned keys as given), workloads.yaml, policy.yaml and keys/."""
    providers = []
    for host_id, host in hosts.items():
        entry = {
            "id": host_id,
            "region": "local",
            "address": host.sshd.address,
            "port": host.sshd.port,
            "user": host.sshd.user,
            "capacity": {"cpu": 8, "mem_gb": 16, "net_mbps": 1000},
            "root": str(roots[host_id]),
            "python": sys.executable,
        }
        if files.host_keys.get(host_id):
            entry["host_key"] = files.host_keys[host_id]
        providers.append({
            "id": PROVIDERS[host_id], "kind": "colo", "regions": ["local"],
            "contract": {"price_per_cpu_hour": 0.02}, "hosts": [entry],
        })  # fmt: skip
    workloads = [{
        "id": WORKLOAD, "resources": {"cpu": 1, "mem_gb": 1}, "shard_size": {"cpu": 1},
        "runtime": {"command": ["demo-kv"]}, "current_hosts": ["host-a"],
    }]  # fmt: skip
    policy = {
        "operators": [{
            "id": "broker",
            "grants": [{"provider": p, "actions": a} for p, a in files.grants.items()],
        }]
    }  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    for name, document in (
        ("providers.yaml", {"providers": providers}),
        ("workloads.yaml", {"workloads": workloads}),
        ("policy.yaml", policy),
    ):
        (home / name).write_text(yaml.safe_dump(document, sort_keys=False))
    keys = home / "keys"
    keys.mkdir(exist_ok=True)
    shutil.copyfile(client_key, keys / "client_ed25519")
    (keys / "client_ed25519").chmod(0o600)
    shutil.copyfile(shared_transfer_ca()[1], keys / "transfer_ca")
    (keys / "transfer_ca").chmod(0o600)


def add_move(
    db: Path, move_id: str, shard_id: str, status: str = "approved",
    from_host: str = "host-a", to_host: str = "host-b",
) -> None:  # fmt: skip
    """A plan row, proposed and then (unless `status` is 'proposed') decided by a person."""
    with connect(db) as con:
        ensure_plan_schema(con)
        con.execute(
            "INSERT INTO plan.migration_plan (move_id, plan_run_id, created_at, shard_id, "
            "from_host_id, from_provider_id, to_host_id, to_provider_id, reason, status) "
            "VALUES (?, 'run-0000000000000000', now(), ?, ?, ?, ?, ?, 'cost', 'proposed')",
            [move_id, shard_id, from_host, PROVIDERS[from_host], to_host, PROVIDERS[to_host]],
        )
        if status != "proposed":
            decide(con, move_id, status, "alice", "test")


def plan_status(db: Path, move_id: str) -> str:
    with connect(db, read_only=True) as con:
        return con.execute(
            "SELECT status FROM plan.migration_plan WHERE move_id = ?", [move_id]
        ).fetchall()[0][0]


def decisions(db: Path, move_id: str) -> list[tuple[str, str, str]]:
    with connect(db, read_only=True) as con:
        return con.execute(
            "SELECT from_status, to_status, decided_by FROM plan.decisions WHERE move_id = ? "
            "ORDER BY decided_at, rowid",
            [move_id],
        ).fetchall()
