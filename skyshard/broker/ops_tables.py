"""Schema `ops` (migrations, their steps, routing) written in short transactions.

Every method opens the DuckDB file, writes or reads, and closes it again, so a migration never
holds the one writer lock while it transfers data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from skyshard.db import connect, transaction

DDL = (
    "CREATE SCHEMA IF NOT EXISTS ops",
    """CREATE TABLE IF NOT EXISTS ops.migrations (
        move_id VARCHAR PRIMARY KEY, shard_id VARCHAR NOT NULL, from_host VARCHAR NOT NULL,
        to_host VARCHAR NOT NULL, phase VARCHAR NOT NULL, status VARCHAR NOT NULL,
        attempt INTEGER NOT NULL, started_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL,
        bytes_sent BIGINT NOT NULL, rounds INTEGER NOT NULL, downtime_ms DOUBLE, error VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS ops.migration_steps (
        move_id VARCHAR NOT NULL, seq INTEGER NOT NULL, phase VARCHAR NOT NULL,
        "at" TIMESTAMP NOT NULL, detail JSON, PRIMARY KEY (move_id, seq))""",
    """CREATE TABLE IF NOT EXISTS ops.routing (
        shard_id VARCHAR PRIMARY KEY, host_id VARCHAR NOT NULL, address VARCHAR NOT NULL,
        port INTEGER NOT NULL, generation BIGINT NOT NULL, updated_at TIMESTAMP NOT NULL)""",
)


class RoutingConflict(RuntimeError):
    """The routing entry is not what the caller expected (another move or a stale plan)."""


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class MigrationRow:
    move_id: str
    shard_id: str
    from_host: str
    to_host: str
    phase: str
    status: str
    attempt: int
    started_at: datetime
    updated_at: datetime
    bytes_sent: int
    rounds: int
    downtime_ms: float | None
    error: str | None


@dataclass(frozen=True)
class Step:
    move_id: str
    seq: int
    phase: str
    at: datetime
    detail: dict


@dataclass(frozen=True)
class PendingStep:
    """A step that happened at `at` and is persisted later, batched with others."""

    phase: str
    detail: dict
    at: datetime = field(default_factory=now)


@dataclass(frozen=True)
class Route:
    shard_id: str
    host_id: str
    address: str
    port: int
    generation: int
    updated_at: datetime


COLUMNS = [column.name for column in fields(MigrationRow)]


def ensure_ops_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in DDL:
        con.execute(statement)


def _insert_step(
    con: duckdb.DuckDBPyConnection, move_id: str, phase: str, detail: dict, at: datetime
) -> Step:
    seq = con.execute(
        "SELECT coalesce(max(seq), 0) + 1 FROM ops.migration_steps WHERE move_id = ?", [move_id]
    ).fetchone()[0]
    con.execute(
        "INSERT INTO ops.migration_steps VALUES (?, ?, ?, ?, ?)",
        [move_id, seq, phase, at, json.dumps(detail, sort_keys=True, default=str)],
    )
    return Step(move_id, seq, phase, at, detail)


class OpsStore:
    """The `ops` tables in the DuckDB file at `path`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        with connect(self.path) as con:
            ensure_ops_schema(con)

    def migration(self, move_id: str) -> MigrationRow | None:
        with connect(self.path) as con:
            row = con.execute(
                f"SELECT {', '.join(COLUMNS)} FROM ops.migrations WHERE move_id = ?", [move_id]
            ).fetchone()
        return MigrationRow(*row) if row else None

    def create_migration(self, move_id: str, shard_id: str, from_host: str, to_host: str) -> None:
        at = now()
        with connect(self.path) as con:
            con.execute(
                "INSERT OR IGNORE INTO ops.migrations VALUES "
                "(?, ?, ?, ?, 'accepted', 'running', 0, ?, ?, 0, 0, NULL, NULL)",
                [move_id, shard_id, from_host, to_host, at, at],
            )

    def update_migration(self, move_id: str, **values: object) -> None:
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown ops.migrations columns: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in values)
        with connect(self.path) as con:
            con.execute(
                f"UPDATE ops.migrations SET {assignments}, updated_at = ? WHERE move_id = ?",
                [*values.values(), now(), move_id],
            )

    def record_step(
        self, move_id: str, phase: str, detail: dict, *, set_phase: bool = True, **values: object
    ) -> Step:
        """Append a step and set the row's phase (unless not `set_phase`) and `values`, in one
        transaction."""
        return self.record_steps(move_id, [PendingStep(phase, detail)], set_phase, **values)[0]

    def record_steps(
        self, move_id: str, pending: list[PendingStep], set_phase: bool = True, **values: object
    ) -> list[Step]:
        """Append steps in order, each with its own time, and set the row's phase to the last
        one's (unless not `set_phase`) and `values`, in one transaction."""
        if set_phase:
            values = {"phase": pending[-1].phase, **values}
        assignments = ", ".join(f"{name} = ?" for name in ("updated_at", *values))
        with connect(self.path) as con, transaction(con):
            steps = [_insert_step(con, move_id, s.phase, s.detail, s.at) for s in pending]
            con.execute(
                f"UPDATE ops.migrations SET {assignments} WHERE move_id = ?",
                [now(), *values.values(), move_id],
            )
        return steps

    def steps(self, move_id: str) -> list[Step]:
        with connect(self.path) as con:
            rows = con.execute(
                'SELECT move_id, seq, phase, "at", detail FROM ops.migration_steps '
                "WHERE move_id = ? ORDER BY seq",
                [move_id],
            ).fetchall()
        return [Step(m, s, p, a, json.loads(d) if d else {}) for m, s, p, a, d in rows]

    def route(self, shard_id: str) -> Route | None:
        with connect(self.path) as con:
            row = con.execute(
                "SELECT shard_id, host_id, address, port, generation, updated_at "
                "FROM ops.routing WHERE shard_id = ?",
                [shard_id],
            ).fetchone()
        return Route(*row) if row else None

    def routes(self) -> list[Route]:
        with connect(self.path) as con:
            rows = con.execute(
                "SELECT shard_id, host_id, address, port, generation, updated_at "
                "FROM ops.routing ORDER BY shard_id"
            ).fetchall()
        return [Route(*row) for row in rows]

    def register_route(self, shard_id: str, host_id: str, address: str, port: int) -> Route:
        """Record where a shard was first placed (generation 1); refuses to overwrite."""
        with connect(self.path) as con:
            con.execute(
                "INSERT OR IGNORE INTO ops.routing VALUES (?, ?, ?, ?, 1, ?)",
                [shard_id, host_id, address, port, now()],
            )
        route = self.route(shard_id)
        assert route is not None
        if (route.host_id, route.address, route.port) != (host_id, address, port):
            raise RoutingConflict(
                f"shard {shard_id} is already routed to {route.host_id} "
                f"({route.address}:{route.port}, generation {route.generation})"
            )
        return route

    def switch_route(
        self, move_id: str, expected: Route, host_id: str, address: str, port: int, detail: dict
    ) -> tuple[Route, Step]:
        """The commit point of a migration: compare-and-set the route to the next generation
        and mark the migration `switched`, atomically."""
        at = now()
        with connect(self.path) as con, transaction(con):
            changed = con.execute(
                "UPDATE ops.routing SET host_id = ?, address = ?, port = ?, "
                "generation = generation + 1, updated_at = ? "
                "WHERE shard_id = ? AND host_id = ? AND generation = ? RETURNING generation",
                [host_id, address, port, at, expected.shard_id, expected.host_id,
                 expected.generation],
            ).fetchall()  # fmt: skip
            if not changed:
                raise RoutingConflict(
                    f"routing of shard {expected.shard_id} is no longer {expected.host_id} "
                    f"generation {expected.generation}; not switching"
                )
            step = _insert_step(con, move_id, "switched", detail, at)
            con.execute(
                "UPDATE ops.migrations SET phase = 'switched', updated_at = ? WHERE move_id = ?",
                [at, move_id],
            )
        route = Route(expected.shard_id, host_id, address, port, changed[0][0], at)
        return route, step


def routed_hosts(database: Path | str) -> dict[str, str]:
    """Where the routing table says each migrated shard runs now (shard id → host id)."""
    return {route.shard_id: route.host_id for route in OpsStore(database).routes()}
