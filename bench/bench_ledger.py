"""Trust ledger benchmark: signed, durable appends with group commit and verify-before-sign;
incremental verification of entries another writer appended; a checkpoint (which re-hashes the
whole log); full verification of a large log; inclusion proof size and verification time.

    .venv/bin/python bench/bench_ledger.py [--entries 1000000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

from skyshard.ledger import Ledger
from skyshard.ledger.ed25519 import SigningKey
from skyshard.ledger.merkle import verify_inclusion
from skyshard.ledger.note import Ed25519Signer
from skyshard.ledger.verify import verify_ledger


def records(start: int, count: int) -> list[tuple]:
    return [
        ("migration_step", f"run-{i // 10}", "broker", {"shard": f"s-{i % 97}", "step": i % 7})
        for i in range(start, start + count)
    ]


def cpu_seconds() -> float:
    """CPU time of this process plus its reaped children (the verification workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class DescendantCpu:
    """CPU seconds used by the processes started below this one while it runs, sampled from
    /proc: the verification workers are children of the multiprocessing fork server, which
    this process never reaps, so getrusage cannot see them. A worker's last interval
    (at most `interval`) is missed; `own` is the sampling thread's CPU, to subtract from
    this process's."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.seen: dict[int, float] = {}
        self.own = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DescendantCpu:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(self.seen.values())

    def _run(self) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        while not self._stop.wait(self.interval):
            parents, cpu = {}, {}
            for name in filter(str.isdigit, os.listdir("/proc")):
                try:
                    fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                parents[int(name)] = int(fields[1])
                cpu[int(name)] = (int(fields[11]) + int(fields[12])) / ticks
            for pid in parents:
                if _descends_from(os.getpid(), pid, parents):
                    self.seen[pid] = max(self.seen.get(pid, 0.0), cpu[pid])
            self.own = time.thread_time()


def _descends_from(ancestor: int, pid: int, parents: dict[int, int]) -> bool:
    while pid in parents and pid > 1:
        pid = parents[pid]
        if pid == ancestor:
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--proofs", type=int, default=2000)
    args = parser.parse_args()
    signer = Ed25519Signer("bench.skyshard/ledger", SigningKey.generate())
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        ledger = Ledger.open(Path(tmp) / "ledger", signer)

        single = 500
        started = time.perf_counter()
        for i in range(single):
            ledger.append("run_started", f"run-{i}", "broker", {"i": i})
        single_rate = single / (time.perf_counter() - started)
        print(f"appends, one fsync each:          {single_rate:10,.0f} /s  ({single} entries)")

        started, cpu = time.perf_counter(), cpu_seconds()
        written = single
        while written < args.entries:
            count = min(args.batch, args.entries - written)
            ledger.append_many(records(written, count))
            written += count
        group_seconds = time.perf_counter() - started
        group_cpu = cpu_seconds() - cpu
        group_rate = (args.entries - single) / group_seconds
        print(
            f"appends, group commit ({args.batch}/fsync): {group_rate:10,.0f} /s  "
            f"({args.entries - single:,} entries in {group_seconds:.1f} s, "
            f"{group_cpu:.1f} CPU-s; target >= 10,000/s)"
        )
        size_mb = (ledger.directory / "log.jsonl").stat().st_size / 1e6
        started = time.perf_counter()
        ledger.checkpoint()
        checkpoint_seconds = time.perf_counter() - started
        print(
            f"checkpoint (verify new + re-hash all): {checkpoint_seconds:7.2f} s   "
            f"({args.entries:,} entries)"
        )

        other = Ledger(ledger.directory, signer)
        other.append_many(records(0, 1000))
        started = time.perf_counter()
        ledger.append("run_started", "after-other-writer", "broker", {})
        incremental = time.perf_counter() - started
        print(
            f"incremental verify of 1,000 new entries + 1 append: {incremental:7.3f} s "
            f"(log of {args.entries:,}; target < 1 s)"
        )
        started = time.perf_counter()
        Ledger(ledger.directory, signer).append("run_started", "fresh-process", "broker", {})
        fresh = time.perf_counter() - started
        print(f"first append of a fresh handle (cache + re-hash): {fresh:7.2f} s")

        load = os.getloadavg()[0]
        started, cpu = time.perf_counter(), cpu_seconds()
        with DescendantCpu() as workers:
            result = verify_ledger(ledger.directory, signer.verifier())
        verify_seconds = time.perf_counter() - started
        verify_cpu = cpu_seconds() - cpu - workers.own + workers.seconds
        assert result.ok, result.reason
        print(
            f"full verification:                {verify_seconds:10.1f} s   "
            f"({result.entries:,} entries, {size_mb:.0f} MB, {os.cpu_count()} cores, "
            f"{verify_cpu:.1f} CPU-s in all processes, load average {load:.1f} before; "
            "target < 60 s)"
        )

        tree = result.tree
        assert tree is not None
        step = max(1, tree.size // args.proofs)
        indices = list(range(0, tree.size, step))[: args.proofs]
        proofs = [(i, tree.leaf_hash_at(i), tree.inclusion_proof(i)) for i in indices]
        root = tree.root()
        timings = []
        for index, leaf, path in proofs:
            started = time.perf_counter()
            verify_inclusion(index, tree.size, leaf, path, root)
            timings.append(time.perf_counter() - started)
        hashes = max(len(p) for _, _, p in proofs)
        print(
            f"inclusion proof at {tree.size:,}:     {hashes} hashes ({hashes * 32} bytes), "
            f"verify median {statistics.median(timings) * 1e6:.1f} us, "
            f"p99 {statistics.quantiles(timings, n=100)[98] * 1e6:.1f} us over {len(timings)} "
            "proofs (target < 1 ms)"
        )
        print(f"load average while running: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
