"""A broker in its own process for crash and concurrency tests: runs one approved move as
`migrate_shard` would, and once the step `argv[2]` is persisted prints `at <phase>` and waits
for a line on stdin before going on, so the test can SIGKILL it right there (no `finally`, no
context manager runs) or run a second broker meanwhile.

Usage: python -m tests.migration_job.broker_process MOVE_ID PHASE LEASE_TTL
(SKYSHARD_HOME, SKYSHARD_DUCKDB and SKYSHARD_LEDGER_DIR from the environment)."""

from __future__ import annotations

import sys

from skyshard.broker.execute import run_configured_move
from skyshard.broker.lease import LeaseSettings
from skyshard.broker.migration import MigrationSettings
from skyshard.config import paths
from skyshard.sim.home import current_sky


def main(move_id: str, phase: str, ttl: float) -> None:
    def stop_at(persisted: str) -> None:
        if persisted == phase:
            print(f"at {phase}", flush=True)
            sys.stdin.readline()

    settings = MigrationSettings(health_timeout=10, lease=LeaseSettings(ttl=ttl))
    result = run_configured_move(
        paths.duckdb_path(), move_id, current_sky(), run_id="broker-process",
        settings=settings, after_step=stop_at,
    )  # fmt: skip
    print(f"finished {result.outcome.status}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
