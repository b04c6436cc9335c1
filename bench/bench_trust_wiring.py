"""Costs of the trust wiring on a large ledger: the sensors' once-per-run lookup, computing
every provider's trust score, and settlement.

    .venv/bin/python bench/bench_trust_wiring.py [entries]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from skyshard.config.policy import PaymentTerms, PolicyFile
from skyshard.ledger import Ledger, Record
from skyshard.ledger.ed25519 import SigningKey
from skyshard.ledger.note import Ed25519Signer
from skyshard.trust.events import entries_of_run, migration_payload
from skyshard.trust.scores import compute_trust_scores
from skyshard.trust.settlement import placement_history, settle, settlement_since

PROVIDERS = [f"p{i}" for i in range(20)]
BATCH = 10_000


def fill(ledger: Ledger, count: int) -> None:
    for start in range(0, count, BATCH):
        records = []
        for i in range(start, min(count, start + BATCH)):
            source, target = PROVIDERS[i % 20], PROVIDERS[(i * 7 + 3) % 20]
            if i % 3 == 0:
                payload = migration_payload(f"m{i}", f"s{i % 500}", source, target, 1 << 20)
                kind = "migration_completed" if i % 10 else "migration_rolled_back"
                records.append(Record(kind, f"run-{i}", "broker", payload))
            else:
                records.append(Record("run_started", f"run-{i}", "dagster", {"job": "j"}))
        ledger.append_many(records)


def timed(label: str, action, repeat: int = 1):
    start = time.perf_counter()
    for _ in range(repeat):
        result = action()
    elapsed = (time.perf_counter() - start) / repeat
    print(f"{label:<48} {elapsed * 1000:10.1f} ms")
    return result


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with tempfile.TemporaryDirectory() as folder:
        ledger = Ledger.open(Path(folder), Ed25519Signer("bench", SigningKey(bytes(32))))
        timed(f"fill {count} entries", lambda: fill(ledger, count))
        size = (Path(folder) / "log.jsonl").stat().st_size
        print(f"log size {size / 1e6:.1f} MB")
        timed("sensor lookup: run id present (middle)", lambda: entries_of_run(ledger, "run-5"), 5)
        timed("sensor lookup: run id absent", lambda: entries_of_run(ledger, "nope"), 5)
        entries = timed("read + parse all entries", lambda: list(ledger.entries()))
        now = datetime.now(UTC) + timedelta(minutes=1)
        tiers = dict.fromkeys(PROVIDERS, "silver")
        policy = PolicyFile(payment={p: PaymentTerms(settle_per_shard_hour=0.01) for p in tiers})
        timed(
            f"trust scores, {len(tiers)} providers",
            lambda: compute_trust_scores(entries, tiers, policy.trust, now),
        )
        since = settlement_since(entries, now)
        initial = {f"s{i}": PROVIDERS[i % 20] for i in range(500)}
        timed(
            "settlement (placement replay + monthly rows)",
            lambda: settle(
                policy, tiers, placement_history(initial, entries, since, now), entries, since, now
            ),
        )


if __name__ == "__main__":
    main()
