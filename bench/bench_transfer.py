"""Migration transfer through the broker's `Migrator` (the path job `migrate_shard` runs)
between two hosts in network namespaces, vs OpenSSH scp between the same hosts, in one run;
then re-migrations after a 1 % change (contiguous overwrite, then inserted bytes).

The shard is the demo key-value service; its state directory also holds `bulk.bin` of
random bytes (the service ignores files it does not own). Needs root (namespaces, and a
cpuacct cgroup for the CPU seconds of everything the bench starts).

Usage: .venv/bin/python -m bench.bench_transfer [--size-mib 1024]
"""

from __future__ import annotations

import argparse
import itertools
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
CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        for offset in range(0, size, 64 * MIB):
            handle.write(os.urandom(min(64 * MIB, size - offset)))


class CpuMeter:
    """CPU seconds of this process and everything it starts (both hosts' sshd, sessions,
    helpers, ssh), from a cpuacct cgroup of its own: on a shared machine the load inflates
    wall times, much less CPU time."""

    def __init__(self) -> None:
        self.group = CPUACCT / f"bench-transfer-{os.getpid()}"
        self.group.mkdir()
        (self.group / "cgroup.procs").write_text(str(os.getpid()))

    def seconds(self) -> float:
        return int((self.group / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        (CPUACCT / "cgroup.procs").write_text(str(os.getpid()))
        # The group's other processes (the hosts) have exited; it empties asynchronously.
        for _ in range(50):
            try:
                self.group.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def scp_seconds(
    spaces, source: int, target: TestHost, path: Path, cipher: str | None, cpu: CpuMeter
) -> dict:
    """scp from inside host `source`'s namespace to `target`, its host key pinned."""
    known = path.with_name("scp_known_hosts")
    known.write_text(f"{target.sshd.address} {target.sshd.host_key_line}\n")
    command = [*spaces.exec_prefix(source), "scp", "-q", "-i", str(target.sshd.client_key_path),
               "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
               *(["-c", cipher] if cipher else []), str(path),
               f"{target.sshd.user}@{target.sshd.address}:{target.root}/scp-copy.bin"]  # fmt: skip
    started, cpu_before = time.perf_counter(), cpu.seconds()
    subprocess.run(command, check=True)
    result = {"total_s": time.perf_counter() - started, "cpu_s": cpu.seconds() - cpu_before}
    (target.root / "scp-copy.bin").unlink()
    return result


def migrate(access: dict, db: Path, move_id: str, source: str, target: str, cpu: CpuMeter) -> dict:
    migrator = Migrator(str(db), access, MigrationSettings(stall_timeout=120),
                        transfer_ca=shared_transfer_ca()[0])  # fmt: skip
    started, cpu_before = time.perf_counter(), cpu.seconds()
    outcome = migrator.migrate(MoveRequest(move_id, SHARD, source, target))
    total = time.perf_counter() - started
    cpu_s = cpu.seconds() - cpu_before
    assert outcome.status == "done", outcome.error
    steps = OpsStore(db).steps(move_id)
    sends = [s.detail for s in steps if s.phase in SEND_PHASES]
    return {
        "total_s": total,
        "cpu_s": cpu_s,
        "phases": phase_seconds(steps),
        "send_s": sum(d["seconds"] for d in sends),
        "content": sum(d["content_bytes_sent"] for d in sends),
        "wire": sum(d["bytes_sent"] for d in sends),
        "chunks": max(d["chunks_sent"] for d in sends),
        "rounds": outcome.rounds,
        "downtime_ms": outcome.downtime_ms,
    }


def phase_seconds(steps: list) -> list[tuple[str, float]]:
    """Wall seconds from each recorded step to the next, merged into the move's stages."""
    stages = {"precopy": "pre-copy round {round}: {how}",
              "frozen": "freeze + final snapshot + final delta",
              "cutover": "cutover: restore, kill source, start + health on the target",
              "switched": "routing switch, source cleaned, routing pushed, done"}  # fmt: skip
    found: list[tuple[str, float]] = []
    ordered = [s for s in steps if s.phase != "lease_taken_over"]
    for before, after in itertools.pairwise(ordered):
        seconds = (after.at - before.at).total_seconds()
        if after.phase in stages:
            how = (
                "state files sent whole (stop: {stop})"
                if after.detail.get("whole")
                else "snapshot streamed + sent, then restored"
            ).format(**after.detail)
            found.append((stages[after.phase].format(how=how, **after.detail), seconds))
        elif found:
            found[-1] = (found[-1][0], found[-1][1] + seconds)
        else:
            found.append(("accepted, status checks, helpers installed", seconds))
    return found


def bulk(hosts: dict[str, TestHost], host_id: str) -> Path:
    return hosts[host_id].root / "shards" / SHARD / "state" / "bulk.bin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_mib * MIB
    changed = size // 100
    policy = AccessPolicy.from_mapping({"bench": [("*", ACTIONS)]})
    cpu = CpuMeter()
    try:
        results = run(size, changed, policy, cpu)
    finally:
        cpu.close()
    report(size, changed, results)


def run(size: int, changed: int, policy: AccessPolicy, cpu: CpuMeter) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-transfer-", dir="/tmp") as tmp:
        work = Path(tmp)
        with namespace_hosts(work, 2) as (spaces, hosts), ConnectionPool() as pool:
            access = {h: host.access(policy, "bench", pool) for h, host in hosts.items()}
            db = work / "skyshard.duckdb"
            access["h1"].runtime().start(SHARD, PORT, generation=1, bind="0.0.0.0")
            access["h1"].runtime().health(SHARD, PORT)
            OpsStore(db).register_route(SHARD, "h1", spaces.address(1), PORT)
            write_random(bulk(hosts, "h1"), size)
            scp_default = scp_seconds(spaces, 1, hosts["h2"], bulk(hosts, "h1"), None, cpu)
            scp_gcm = scp_seconds(spaces, 1, hosts["h2"], bulk(hosts, "h1"),
                                  "aes128-gcm@openssh.com", cpu)  # fmt: skip
            first = migrate(access, db, "bench-1", "h1", "h2", cpu)

            time.sleep(1.1)  # past the snapshot cache's "racily clean" second
            with bulk(hosts, "h2").open("r+b") as handle:
                handle.seek(size // 3)
                handle.write(os.urandom(changed))
            contiguous = migrate(access, db, "bench-2", "h2", "h1", cpu)

            time.sleep(1.1)
            path = bulk(hosts, "h1")
            data = path.read_bytes()
            edited = path.with_name("bulk.bin.new")
            edited.write_bytes(data[: size // 2] + os.urandom(changed) + data[size // 2 :])
            del data
            edited.replace(path)
            inserted = migrate(access, db, "bench-3", "h1", "h2", cpu)
            access["h2"].runtime().clean(SHARD)
            addresses = (spaces.address(1), spaces.address(2))
    return {"scp": scp_default, "scp_gcm": scp_gcm, "first": first, "contiguous": contiguous,
            "inserted": inserted, "addresses": addresses}  # fmt: skip


def report(size: int, changed: int, results: dict) -> None:
    mib = size / MIB
    scp, first = results["scp"], results["first"]

    def row(
        name: str, seconds: float, cpu_s: float | None, target: str = "", met: str = ""
    ) -> None:
        ratio = scp["total_s"] / seconds
        cpu_text = f"{cpu_s:.2f}" if cpu_s is not None else "–"
        print(f"| {name} | {seconds:.2f} | {mib / seconds:.1f} | {cpu_text} | {ratio:.2f}x | "
              f"{target} | {met} |")  # fmt: skip

    def verdict(ok: bool) -> str:
        return "**yes**" if ok else "no"

    print(f"state: {mib:.0f} MiB os.urandom (bulk.bin) + demo_kv log; hosts h1, h2 in network "
          f"namespaces {results['addresses']}; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} (1 min) at the end; CPU-s: every process of the bench "
          f"and both hosts (cpuacct)\n")  # fmt: skip
    print("| measure | seconds | MiB/s | CPU-s | vs scp (default cipher) | target | met |")
    print("|---|---:|---:|---:|---:|---|---|")
    row("scp h1 → h2 (default cipher)", scp["total_s"], scp["cpu_s"])
    row("scp h1 → h2 (-c aes128-gcm@openssh.com)", results["scp_gcm"]["total_s"],
        results["scp_gcm"]["cpu_s"])  # fmt: skip
    row(f"migrate h1 → h2: transfer phases ({first['chunks']} files or chunks in the largest, "
        f"{first['wire'] / MIB:.0f} MiB on the wire)", first["send_s"], None)  # fmt: skip
    met = verdict(first["total_s"] <= scp["total_s"])
    row(f"**migrate h1 → h2 end to end** ({first['rounds']} pre-copy rounds + cutover)",
        first["total_s"], first["cpu_s"], "≥ 1.0x", met)  # fmt: skip
    print(f"\ndowntime of the first migration: {first['downtime_ms']:.0f} ms\n")
    print("| first migration, by stage | seconds |")
    print("|---|---:|")
    for name, seconds in first["phases"]:
        print(f"| {name} | {seconds:.2f} |")
    print("\n| re-migration after a 1 % change | changed B | content sent B | on the wire B | "
          "sent / changed | end to end s | target | met |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for name in ("contiguous", "inserted"):
        result = results[name]
        ratio = result["content"] / changed
        label = "contiguous overwrite" if name == "contiguous" else "inserted bytes (mid-file)"
        print(f"| {label} | {changed} | {result['content']} | {result['wire']} | {ratio:.3f}x | "
              f"{result['total_s']:.2f} | ≤ 1.1x | {verdict(ratio <= 1.1)} |")  # fmt: skip


if __name__ == "__main__":
    main()
