"""Concurrent migrations' state writes, from real processes (tests, benches).

Each process replays the operational-state transitions the broker makes for one successful
move of its own shard, through the broker's own `MoveLease` and `OpsStore` methods, in the
broker's order (lease, accepted, attempt, precopy rounds, the persisted cutover batch, the
commit-point `switch_route`, cleanup, routing, done, release). Only the SSH work between them is
left out. Run as `python -m tests.support.state_load DB SHARD START_AT ROUNDS`; prints one JSON
line: the state transactions made, errors seen (with their text) and the elapsed seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from skyshard.broker.lease import LeaseSettings, MoveLease
from skyshard.broker.ops_tables import OpsStore, PendingStep
from skyshard.storage.state import StateConnection

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def move_id_of(shard: str) -> str:
    """A well-formed move id per shard (`mv-` and 16 hex digits)."""
    return "mv-" + shard.encode().hex()[-16:].rjust(16, "0")


def drive_move(db: str, shard: str, rounds: int = 3) -> int:
    """One move's state transitions for `shard` (registered on host-a); returns how many
    state transactions (reads included) it made."""
    ops = OpsStore(db)
    made = [0]
    transact = ops.state.transact

    def counted(work: Callable[[StateConnection], T]) -> T:
        made[0] += 1
        return transact(work)

    ops.state.transact = counted  # type: ignore[method-assign]
    move_id = move_id_of(shard)
    route = ops.register_route(shard, "host-a", "10.0.0.1", 8700)
    with MoveLease(ops, move_id, f"run-{shard}", LeaseSettings(ttl=60)):
        assert ops.migration(move_id) is None
        ops.create_migration(move_id, shard, "host-a", "host-b")
        ops.record_step(move_id, "accepted", {"to_port": None})
        row = ops.migration(move_id)
        ops.update_migration(move_id, attempt=row.attempt + 1, status="running", error=None,
                             downtime_ms=None)  # fmt: skip
        assert ops.route(shard) == route
        for index in range(1, rounds + 1):
            ops.record_step(move_id, "precopy", {"round": index}, bytes_sent=index << 20,
                            rounds=index)  # fmt: skip
        late = [PendingStep(phase, {}) for phase in ("frozen", "final_copy", "cutover",
                                                     "target_started", "healthy")]  # fmt: skip
        ops.record_steps(move_id, late, downtime_ms=12.5)
        ops.switch_route(move_id, route, "host-b", "10.0.0.2", 8700, {"generation": 2},
                         f"run-{shard}")  # fmt: skip
        ops.record_step(move_id, "source_cleaned", {"host": "host-a"})
        ops.routes()
        ops.routing_delivered(["host-a", "host-b"])
        ops.record_step(move_id, "routing_pushed", {"failed": []})
        ops.update_migration(move_id, status="done", error=None)
        ops.record_step(move_id, "done", {"generation": 2})
    return made[0]


@dataclass(frozen=True)
class LoadResult:
    """What the processes reported: transactions, every error's text, the slowest elapsed."""

    writes: int
    errors: list[str]
    seconds: float

    @property
    def writes_per_second(self) -> float:
        return self.writes / self.seconds


def run_concurrent_moves(
    db: str, shards: list[str], env: Mapping[str, str], rounds: int = 3, timeout: float = 300
) -> LoadResult:
    """One process per shard, all released at the same instant; waits for every one."""
    start_at = time.time() + 2.0 + 0.1 * len(shards)  # after every interpreter has started
    child_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.support.state_load", db]
    processes = [
        subprocess.Popen(
            [*command, shard, str(start_at), str(rounds)],
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for shard in shards
    ]
    writes, errors, seconds = 0, [], 0.0
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        if process.returncode != 0:
            errors.append(f"exit {process.returncode}: {err.strip()[-2000:]}")
            continue
        report = json.loads(out.strip().splitlines()[-1])
        writes += report["writes"]
        errors += report["errors"]
        seconds = max(seconds, report["seconds"])
    return LoadResult(writes, errors, seconds)


def _main(db: str, shard: str, start_at: str, rounds: str) -> None:
    OpsStore(db)  # schema (and the connection) ready before the start signal
    time.sleep(max(0.0, float(start_at) - time.time()))
    started = time.monotonic()
    errors: list[str] = []
    writes = 0
    try:
        writes = drive_move(db, shard, int(rounds))
    except Exception as error:  # reported, and counted by the caller as a failure
        errors.append(f"{shard}: {type(error).__name__}: {error}")
    print(json.dumps({"writes": writes, "errors": errors,
                      "seconds": time.monotonic() - started}))  # fmt: skip


if __name__ == "__main__":
    _main(*sys.argv[1:5])
