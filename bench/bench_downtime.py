"""Downtime (freeze → healthy on target) of a live migration vs stop-and-copy, 1 GiB of state.

Two sshd hosts in network namespaces (own addresses; chunks go host to host), the demo
key-value shard holding the state in 1 MiB values, and a writer that adds ~1 % more while the
pre-copy rounds run. Stop-and-copy is the same protocol with `max_rounds=0`: it freezes first
and sends everything in the frozen round. Needs root (namespaces).

    .venv/bin/python -m bench.bench_downtime [--gib 1.0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from skyshard.broker.migration import MigrationSettings, Migrator, MoveRequest
from skyshard.broker.ops_tables import OpsStore
from skyshard.broker.precopy import PrecopyRule
from skyshard.demo_kv import client
from skyshard.transport.access import ACTIONS, AccessPolicy
from skyshard.transport.ssh import ConnectionPool
from tests.support.hosts import namespace_hosts, shared_transfer_ca

VALUE = 1 << 20
SHARD = "kv-1"
PORT = 8500
# Each step's time is when it happened (the frozen window's steps are written late, batched).
CUTOVER_STEPS = ("final_copy", "cutover", "restored", "source_stopped", "target_started",
                 "healthy")  # fmt: skip


def fill(address: str, count: int, prefix: str) -> None:
    for index in range(count):
        client.put(address, PORT, f"{prefix}-{index}", os.urandom(VALUE))


def run(workdir: Path, gib: float, rule: PrecopyRule) -> dict:
    policy = AccessPolicy.from_mapping({"bench": [("*", ACTIONS)]})
    db = workdir / "skyshard.duckdb"
    with namespace_hosts(workdir, 2) as (_spaces, hosts), ConnectionPool() as pool:
        access = {h: host.access(policy, "bench", pool) for h, host in hosts.items()}
        try:
            return migrate(access, db, gib, rule)
        finally:
            for host in access.values():
                host.runtime().clean(SHARD)


def migrate(access: dict, db: Path, gib: float, rule: PrecopyRule) -> dict:
    source = access["h1"].runtime()
    address = access["h1"].service_address
    source.start(SHARD, PORT, generation=1, bind="0.0.0.0")
    source.health(SHARD, PORT)
    OpsStore(db).register_route(SHARD, "h1", address, PORT)
    values = int(gib * 1024)
    fill(address, values, "base")
    writer = threading.Thread(target=fill, args=(address, max(1, values // 100), "during"))
    started: list[float] = []

    def on_event(step) -> None:
        if step.phase == "accepted":
            started.append(time.monotonic())
            if rule.max_rounds:
                writer.start()
        if step.phase == "precopy" and writer.is_alive():
            writer.join()  # the 1 % lands during pre-copy, as in the target scenario

    settings = MigrationSettings(rule, health_timeout=60, stall_timeout=120)
    migrator = Migrator(str(db), access, settings, transfer_ca=shared_transfer_ca()[0],
                        on_event=on_event)  # fmt: skip
    outcome = migrator.migrate(MoveRequest("bench-1", SHARD, "h1", "h2"))
    assert outcome.status == "done", outcome.error
    steps = OpsStore(db).steps("bench-1")
    frozen = next(step.at for step in steps if step.phase == "frozen")
    cutover = {
        step.phase: round((step.at - frozen).total_seconds() * 1000)
        for step in steps
        if step.phase in CUTOVER_STEPS
    }
    return {
        "cutover_ms": cutover,
        "downtime_ms": outcome.downtime_ms,
        "bytes_sent": outcome.bytes_sent,
        "rounds": outcome.rounds,
        "total_s": time.monotonic() - started[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-downtime-") as tmp:
        live = run(Path(tmp) / "live", args.gib, PrecopyRule(max_rounds=5, small_bytes=32 << 20))
        stop_copy = run(Path(tmp) / "stop", args.gib, PrecopyRule(max_rounds=0))
    print(f"state: {args.gib} GiB in 1 MiB values; writer added ~1 % during pre-copy")
    print(f"cores: {os.cpu_count()}, load average after the runs: {os.getloadavg()}")
    for name, result in (("live (pre-copy)", live), ("stop-and-copy", stop_copy)):
        print(
            f"{name:16} downtime {result['downtime_ms']:8.0f} ms   rounds {result['rounds']}   "
            f"sent {result['bytes_sent'] / 2**20:7.0f} MiB   total {result['total_s']:6.1f} s"
        )
        print(f"{'':16} cutover steps, ms after the freeze began: {result['cutover_ms']}")
    print(f"target < 1000 ms downtime: {'met' if live['downtime_ms'] < 1000 else 'NOT met'}")


if __name__ == "__main__":
    main()
