"""Many processes on the operational state at once: 20 migrations' state writes on different
shards (the broker's own lease and ops-store calls, each in its own process) finish with no lock
or serialization error on either state_backend, and every move ends committed exactly once."""

from __future__ import annotations

import os

from skyshard.broker.ops_tables import OpsStore
from tests.support.state_load import move_id_of, run_concurrent_moves

PROCESSES = 20
PHASES = ["accepted", "precopy", "precopy", "precopy", "frozen", "final_copy", "cutover",
          "target_started", "healthy", "switched", "source_cleaned", "routing_pushed",
          "done"]  # fmt: skip
TRANSACTIONS_PER_MOVE = 20
"""Without the lease heartbeats, which depend on how long the move takes."""


def test_twenty_concurrent_migrations_write_state_without_errors(state_backend: str) -> None:
    db = os.environ["SKYSHARD_DUCKDB"]
    shards = [f"kv-{index}" for index in range(PROCESSES)]
    env = {key: os.environ[key] for key in ("SKYSHARD_DUCKDB", "SKYSHARD_STATE_URL")
           if key in os.environ}  # fmt: skip
    result = run_concurrent_moves(db, shards, env)
    assert result.errors == []
    ops = OpsStore(db)
    for shard in shards:
        move_id = move_id_of(shard)
        row = ops.migration(move_id)
        assert (row.status, row.phase, row.attempt, row.downtime_ms) == ("done", "done", 1, 12.5)
        steps = ops.steps(move_id)
        assert [s.seq for s in steps] == list(range(1, len(PHASES) + 1))
        assert [s.phase for s in steps] == PHASES
        assert ops.lease(move_id) is None
    assert {r.shard_id: (r.host_id, r.generation) for r in ops.routes()} == {
        shard: ("host-b", 2) for shard in shards
    }
    assert result.writes >= PROCESSES * TRANSACTIONS_PER_MOVE
