"""Migration transfer through the broker's `Migrator` (the path job `migrate_shard` runs)
between two hosts in network namespaces, vs OpenSSH scp between the same hosts, in one run;
then re-migrations after a 1 % change (contiguous overwrite, then inserted bytes).

The shard is the demo key-value service; its state directory also holds `bulk.bin` of
random bytes (the service ignores files it does not own). Needs root (namespaces).

Usage: .venv/bin/python -m bench.bench_transfer [--size-mib 1024]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from skyshard.broker.migration import MigrationSettings, Migrator, MoveRequest
from skyshard.broker.ops_tables import OpsStore
from skyshard.transport.access import ACTIONS, AccessPolicy
from skyshard.transport.ssh import ConnectionPool
from tests.support.hosts import TestHost, namespace_hosts, shared_transfer_ca

MIB = 1 << 20
SHARD = "kv-1"
PORT = 8500
SEND_PHASES = ("precopy", "final_copy")


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        for offset in range(0, size, 64 * MIB):
            handle.write(os.urandom(min(64 * MIB, size - offset)))


def scp_seconds(spaces, source: int, target: TestHost, path: Path, cipher: str | None) -> float:
    """scp from inside host `source`'s namespace to `target`, its host key pinned."""
    known = path.with_name("scp_known_hosts")
    known.write_text(f"{target.sshd.address} {target.sshd.host_key_line}\n")
    command = [*spaces.exec_prefix(source), "scp", "-q", "-i", str(target.sshd.client_key_path),
               "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
               *(["-c", cipher] if cipher else []), str(path),
               f"{target.sshd.user}@{target.sshd.address}:{target.root}/scp-copy.bin"]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    (target.root / "scp-copy.bin").unlink()
    return seconds


def migrate(access: dict, db: Path, move_id: str, source: str, target: str) -> dict:
    migrator = Migrator(str(db), access, MigrationSettings(stall_timeout=120),
                        transfer_ca=shared_transfer_ca()[0])  # fmt: skip
    started = time.perf_counter()
    outcome = migrator.migrate(MoveRequest(move_id, SHARD, source, target))
    total = time.perf_counter() - started
    assert outcome.status == "done", outcome.error
    sends = [s.detail for s in OpsStore(db).steps(move_id) if s.phase in SEND_PHASES]
    return {
        "total_s": total,
        "send_s": sum(d["seconds"] for d in sends),
        "content": sum(d["content_bytes_sent"] for d in sends),
        "wire": sum(d["bytes_sent"] for d in sends),
        "chunks": max(d["chunks_sent"] for d in sends),
        "rounds": outcome.rounds,
        "downtime_ms": outcome.downtime_ms,
    }


def bulk(hosts: dict[str, TestHost], host_id: str) -> Path:
    return hosts[host_id].root / "shards" / SHARD / "state" / "bulk.bin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_mib * MIB
    changed = size // 100
    policy = AccessPolicy.from_mapping({"bench": [("*", ACTIONS)]})
    with tempfile.TemporaryDirectory(prefix="bench-transfer-", dir="/tmp") as tmp:
        work = Path(tmp)
        with namespace_hosts(work, 2) as (spaces, hosts), ConnectionPool() as pool:
            access = {h: host.access(policy, "bench", pool) for h, host in hosts.items()}
            db = work / "skyshard.duckdb"
            access["h1"].runtime().start(SHARD, PORT, generation=1, bind="0.0.0.0")
            access["h1"].runtime().health(SHARD, PORT)
            OpsStore(db).register_route(SHARD, "h1", spaces.address(1), PORT)
            write_random(bulk(hosts, "h1"), size)
            scp_default = scp_seconds(spaces, 1, hosts["h2"], bulk(hosts, "h1"), None)
            scp_gcm = scp_seconds(spaces, 1, hosts["h2"], bulk(hosts, "h1"),
                                  "aes128-gcm@openssh.com")  # fmt: skip
            first = migrate(access, db, "bench-1", "h1", "h2")

            time.sleep(1.1)  # past the snapshot cache's "racily clean" second
            with bulk(hosts, "h2").open("r+b") as handle:
                handle.seek(size // 3)
                handle.write(os.urandom(changed))
            contiguous = migrate(access, db, "bench-2", "h2", "h1")

            time.sleep(1.1)
            path = bulk(hosts, "h1")
            data = path.read_bytes()
            edited = path.with_name("bulk.bin.new")
            edited.write_bytes(data[: size // 2] + os.urandom(changed) + data[size // 2 :])
            del data
            edited.replace(path)
            inserted = migrate(access, db, "bench-3", "h1", "h2")
            access["h2"].runtime().clean(SHARD)

    mib = size / MIB
    print(f"state: {mib:.0f} MiB os.urandom (bulk.bin) + demo_kv log; hosts h1, h2 in network "
          f"namespaces ({spaces.address(1)}, {spaces.address(2)}); {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"scp h1->h2 (default cipher)      {scp_default:7.2f} s  {mib / scp_default:6.1f} MiB/s")
    print(f"scp h1->h2 (-c aes128-gcm)       {scp_gcm:7.2f} s  {mib / scp_gcm:6.1f} MiB/s")
    print(f"migrate h1->h2, bytes h1->h2     {first['send_s']:7.2f} s  "
          f"{mib / first['send_s']:6.1f} MiB/s  -> {scp_default / first['send_s']:.2f}x scp "
          f"({first['chunks']} chunks, {first['wire'] / MIB:.0f} MiB on the wire)")  # fmt: skip
    print(f"migrate h1->h2, end to end       {first['total_s']:7.2f} s  "
          f"{mib / first['total_s']:6.1f} MiB/s  -> {scp_default / first['total_s']:.2f}x scp "
          f"(snapshot + transfer + restore + cutover, {first['rounds']} pre-copy rounds, "
          f"downtime {first['downtime_ms']:.0f} ms)")  # fmt: skip
    for name, result in (("1% contiguous overwrite", contiguous), ("1% inserted bytes", inserted)):
        print(f"re-migration after {name}: changed {changed} B, sent {result['content']} B "
              f"content ({result['wire']} B on the wire) = {result['content'] / changed:.3f}x, "
              f"end to end {result['total_s']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
