"""Snapshot transfer vs OpenSSH scp over loopback, and the delta sent after a 1 % change.

Usage: .venv/bin/python -m bench.bench_transfer [--size-mib 1024] [--avg-kib 1024]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skyshard.transport.access import ACTIONS, AccessPolicy
from skyshard.transport.chunking import ChunkParams
from skyshard.transport.chunkstore import ChunkStore
from skyshard.transport.ssh import ConnectionPool, SshEndpoint, SshSession
from skyshard.transport.transfer import restore_snapshot, send_snapshot, take_snapshot
from tests.support.sshd import start_sshd

MIB = 1 << 20


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        for _ in range(size // (64 * MIB)):
            handle.write(os.urandom(64 * MIB))
        handle.write(os.urandom(size % (64 * MIB)))


def scp_seconds(server, source: Path, destination: Path, cipher: str | None) -> float:
    command = ["scp", "-q", "-i", str(server.client_key_path), "-P", str(server.port),
               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR"]  # fmt: skip
    if cipher:
        command += ["-c", cipher]
    started = time.perf_counter()
    subprocess.run([*command, str(source), f"{server.user}@{server.address}:{destination}"],
                   check=True)  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--avg-kib", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_mib * MIB
    avg = args.avg_kib * 1024
    params = ChunkParams(min_size=avg // 4, avg_size=avg, max_size=avg * 4)
    work = Path(tempfile.mkdtemp(prefix="bench-transfer-", dir="/tmp"))
    server = start_sshd(work / "sshd")
    endpoint = SshEndpoint(
        host_id="bench", provider_id="bench", address=server.address, port=server.port,
        user=server.user, host_key=server.host_key_line, client_key=server.client_key_path,
        python=sys.executable,
    )  # fmt: skip
    policy = AccessPolicy.from_mapping({"bench": [("*", ACTIONS)]})
    try:
        with ConnectionPool() as pool:
            session = SshSession(endpoint, policy, "bench", pool)
            state = work / "state"
            state.mkdir()
            data = state / "data.bin"
            write_random(data, size)
            remote = work / "remote"
            remote.mkdir()

            scp_default = scp_seconds(server, data, remote / "scp-default.bin", None)
            scp_gcm = scp_seconds(server, data, remote / "scp-gcm.bin", "aes128-gcm@openssh.com")
            (remote / "scp-default.bin").unlink()
            (remote / "scp-gcm.bin").unlink()

            store = ChunkStore(work / "local")
            started = time.perf_counter()
            manifest = take_snapshot("bench", state, store, params)
            snapshot_s = time.perf_counter() - started
            report = send_snapshot(session, manifest, store, str(remote))
            started = time.perf_counter()
            restore_snapshot(session, manifest, str(remote), "shards/bench/state")
            restore_s = time.perf_counter() - started
            chunks = len(manifest.chunk_sizes())

            changed = size // 100
            with data.open("r+b") as handle:
                handle.seek(size // 3)
                handle.write(os.urandom(changed))
            delta_manifest = take_snapshot("bench", state, store, params)
            delta = send_snapshot(session, delta_manifest, store, str(remote))

            scattered_pages = changed // 4096
            with data.open("r+b") as handle:
                for _ in range(scattered_pages):
                    handle.seek(int.from_bytes(os.urandom(4)) % (size - 4096) // 4096 * 4096)
                    handle.write(os.urandom(4096))
            scattered = send_snapshot(
                session, take_snapshot("bench", state, store, params), store, str(remote)
            )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    mib = size / MIB
    end_to_end = snapshot_s + report.seconds + restore_s
    sizes = f"{params.min_size // 1024}/{avg // 1024}/{params.max_size // 1024}"
    print(f"state: {mib:.0f} MiB os.urandom, chunks min/avg/max {sizes} KiB, {chunks} chunks")
    print(f"scp (default cipher)        {scp_default:7.2f} s  {mib / scp_default:7.1f} MiB/s")
    print(f"scp (-c aes128-gcm)         {scp_gcm:7.2f} s  {mib / scp_gcm:7.1f} MiB/s")
    print(f"snapshot (chunk+hash+zstd)  {snapshot_s:7.2f} s  {mib / snapshot_s:7.1f} MiB/s")
    print(f"send_snapshot (4 streams)   {report.seconds:7.2f} s  {mib / report.seconds:7.1f} MiB/s"
          f"  -> {scp_default / report.seconds:.2f}x scp default,"
          f" {scp_gcm / report.seconds:.2f}x scp gcm")  # fmt: skip
    print(f"restore on target (verify)  {restore_s:7.2f} s")
    print(f"snapshot+send+restore       {end_to_end:7.2f} s  {mib / end_to_end:7.1f} MiB/s"
          f"  -> {scp_default / end_to_end:.2f}x scp default")  # fmt: skip
    print(
        f"1% contiguous change: changed {changed} B, sent {delta.content_bytes_sent} B content "
        f"({delta.bytes_sent} B on the wire) = {delta.content_bytes_sent / changed:.3f}x"
    )
    print(
        f"1% as scattered 4 KiB pages: sent {scattered.content_bytes_sent} B = "
        f"{scattered.content_bytes_sent / changed:.1f}x"
    )


if __name__ == "__main__":
    main()
