"""Embedded hosts (asyncssh) vs OpenSSH sshd, side by side: command round trip, SFTP upload.

Run: .venv/bin/python -m bench.bench_embedded_hosts [--mib 64] [--commands 30]
Both servers run on loopback on this machine; the client is the paramiko SshSession the broker
uses. The sshd column is skipped when /usr/sbin/sshd is missing.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

from skyshard.broker.from_config import broker_policy, host_accesses
from skyshard.config.sky import load_sky
from skyshard.embedded_hosts import running_sky
from skyshard.sim import SkyParams, write_sky
from skyshard.transport.access import ACTIONS, AccessPolicy
from skyshard.transport.commands import RemoteCommand
from skyshard.transport.ssh import ConnectionPool, SshSession
from tests.support.hosts import start_host
from tests.support.sshd import sshd_missing_reason


def measure(session: SshSession, root: str, mib: int, commands: int) -> tuple[float, float]:
    """(median seconds per `true` command, SFTP upload MiB/s of `mib` random MiB)."""
    session.run(RemoteCommand("true", ("true",)), action="read_telemetry")  # connect first
    times = []
    for _ in range(commands):
        start = time.perf_counter()
        session.run(RemoteCommand("true", ("true",)), action="read_telemetry")
        times.append(time.perf_counter() - start)
    payload = os.urandom(mib << 20)
    with session.open_sftp(action="receive_migration") as sftp:
        start = time.perf_counter()
        sftp.putfo(io.BytesIO(payload), f"{root}/bench.bin", confirm=True)
        elapsed = time.perf_counter() - start
        sftp.remove(f"{root}/bench.bin")
    return statistics.median(times), mib / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--commands", type=int, default=30)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "sky"
        write_sky(SkyParams(providers=1, hosts_per_provider=1, shards=1, days=7), home)
        sky = load_sky(home)
        with running_sky(home), ConnectionPool() as pool:
            (access,) = host_accesses(
                sky, sky.hosts, pool, broker_policy(sky), keys_dir=home / "keys"
            ).values()
            rows.append(("embedded (asyncssh)", *measure(access.session, access.root, args.mib,
                                                          args.commands)))  # fmt: skip
        reason = sshd_missing_reason()
        if reason is None:
            host = start_host(Path(folder) / "sshd", "bench-host", "bench")
            policy = AccessPolicy.from_mapping({"bench": [("*", ACTIONS)]})
            try:
                with ConnectionPool() as pool:
                    session = host.session(policy, "bench", pool)
                    rows.append(("OpenSSH sshd", *measure(session, str(host.root), args.mib,
                                                          args.commands)))  # fmt: skip
            finally:
                host.sshd.stop()
        else:
            print(f"sshd column skipped: {reason}")
    print(f"{'server':22} {'command round trip (median)':>28} {'SFTP upload':>14}")
    for name, seconds, rate in rows:
        print(f"{name:22} {seconds * 1000:>25.1f} ms {rate:>9.1f} MiB/s")
    print(f"({args.commands} commands `true`; {args.mib} MiB of random bytes over SFTP)")


if __name__ == "__main__":
    main()
