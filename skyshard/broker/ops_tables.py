"""Schema `ops` (migrations, their steps, routing, leases, routing pushes a host missed) written
in short transactions.

Every method opens the DuckDB file, writes or reads, and closes it again, so a migration never
holds the one writer lock while it transfers data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
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
    """CREATE TABLE IF NOT EXISTS ops.move_leases (
        move_id VARCHAR PRIMARY KEY, owner VARCHAR NOT NULL, acquired_at TIMESTAMP NOT NULL,
        heartbeat_at TIMESTAMP NOT NULL, expires_at TIMESTAMP NOT NULL)""",
    # A row per host whose routing document is out of date: a push missed every attempt.
    """CREATE TABLE IF NOT EXISTS ops.routing_backlog (
        host_id VARCHAR PRIMARY KEY, move_id VARCHAR NOT NULL, missed_at TIMESTAMP NOT NULL,
        attempts INTEGER NOT NULL, last_error VARCHAR NOT NULL, updated_at TIMESTAMP NOT NULL)""",
)
NON_TERMINAL = ("running", "rolling_back")


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


@dataclass(frozen=True)
class Lease:
    """Who runs a move (a Dagster run id, or `cli-...`), until when unless renewed."""

    move_id: str
    owner: str
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime

    def live(self, at: datetime) -> bool:
        return self.expires_at > at


@dataclass(frozen=True)
class MissedPush:
    """A host holding an out-of-date routing document since `missed_at` (the push of move
    `move_id`), with the pushes tried so far and the last error."""

    host_id: str
    move_id: str
    missed_at: datetime
    attempts: int
    last_error: str
    updated_at: datetime


COLUMNS = [column.name for column in fields(MigrationRow)]
BACKLOG_SQL = (
    "SELECT host_id, move_id, missed_at, attempts, last_error, updated_at "
    "FROM ops.routing_backlog ORDER BY host_id"
)
LEASE_SQL = "SELECT move_id, owner, acquired_at, heartbeat_at, expires_at FROM ops.move_leases"


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


def stuck_moves(con: duckdb.DuckDBPyConnection) -> list[MigrationRow]:
    """Moves left non-terminal with no live lease: their broker died or gave up (a read-only
    connection will do)."""
    columns = ", ".join(f"m.{name}" for name in COLUMNS)
    rows = con.execute(
        f"SELECT {columns} FROM ops.migrations m LEFT JOIN ops.move_leases l USING (move_id) "
        "WHERE list_contains(?, m.status) AND (l.move_id IS NULL OR l.expires_at <= ?) "
        "ORDER BY m.updated_at",
        [list(NON_TERMINAL), now()],
    ).fetchall()
    return [MigrationRow(*row) for row in rows]


def routing_backlog(con: duckdb.DuckDBPyConnection) -> list[MissedPush]:
    """Hosts whose routing document is out of date (a read-only connection will do)."""
    return [MissedPush(*row) for row in con.execute(BACKLOG_SQL).fetchall()]


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

    def register_route(
        self, shard_id: str, host_id: str, address: str, port: int, generation: int = 1
    ) -> Route:
        """Record where a shard was placed (at `generation`, default 1); refuses to overwrite
        another placement."""
        with connect(self.path) as con:
            con.execute(
                "INSERT OR IGNORE INTO ops.routing VALUES (?, ?, ?, ?, ?, ?)",
                [shard_id, host_id, address, port, generation, now()],
            )
        route = self.route(shard_id)
        assert route is not None
        if (route.host_id, route.address, route.port) != (host_id, address, port):
            raise RoutingConflict(
                f"shard {shard_id} is already routed to {route.host_id} "
                f"({route.address}:{route.port}, generation {route.generation})"
            )
        return route

    def routing_missed(self, host_id: str, move_id: str, attempts: int, error: str) -> None:
        """`host_id` missed `attempts` more routing pushes (the latest for `move_id`)."""
        at = now()
        with connect(self.path) as con:
            con.execute(
                "INSERT INTO ops.routing_backlog VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (host_id) DO UPDATE SET move_id = excluded.move_id, "
                "attempts = ops.routing_backlog.attempts + excluded.attempts, "
                "last_error = excluded.last_error, updated_at = excluded.updated_at",
                [host_id, move_id, at, attempts, error, at],
            )

    def routing_delivered(self, host_ids: list[str]) -> None:
        """These hosts hold the current routing document now."""
        with connect(self.path) as con:
            con.execute("DELETE FROM ops.routing_backlog WHERE list_contains(?, host_id)",
                        [host_ids])  # fmt: skip

    def routing_backlog(self) -> list[MissedPush]:
        with connect(self.path) as con:
            return routing_backlog(con)

    def unregister_route(self, expected: Route) -> None:
        """Drop a shard's route if it is still `expected` (its host and generation)."""
        with connect(self.path) as con:
            gone = con.execute(
                "DELETE FROM ops.routing WHERE shard_id = ? AND host_id = ? AND generation = ? "
                "RETURNING shard_id",
                [expected.shard_id, expected.host_id, expected.generation],
            ).fetchall()
        if not gone:
            raise RoutingConflict(
                f"routing of shard {expected.shard_id} is no longer {expected.host_id} "
                f"generation {expected.generation}; not removing it"
            )

    # --- leases: one broker per move ----------------------------------------------------

    def take_lease(self, move_id: str, owner: str, ttl: float) -> tuple[Lease, Lease | None]:
        """Take (or renew) the move's lease for `owner`, unless another owner's is live.
        Returns (the lease now, the stale lease of another owner it replaced, if any); the
        current lease is the other owner's when that one is live (nothing changed)."""
        at = now()
        with connect(self.path) as con, transaction(con):
            row = con.execute(f"{LEASE_SQL} WHERE move_id = ?", [move_id]).fetchone()
            held = Lease(*row) if row else None
            if held is not None and held.owner != owner and held.live(at):
                return held, None
            acquired = held.acquired_at if held is not None and held.owner == owner else at
            con.execute(
                "INSERT OR REPLACE INTO ops.move_leases VALUES (?, ?, ?, ?, ?)",
                [move_id, owner, acquired, at, at + timedelta(seconds=ttl)],
            )
        stale = held if held is not None and held.owner != owner else None
        return Lease(move_id, owner, acquired, at, at + timedelta(seconds=ttl)), stale

    def renew_lease(self, move_id: str, owner: str, ttl: float) -> bool:
        """Extend `owner`'s lease; False when it is not `owner`'s any more (taken over)."""
        at = now()
        with connect(self.path) as con:
            renewed = con.execute(
                "UPDATE ops.move_leases SET heartbeat_at = ?, expires_at = ? "
                "WHERE move_id = ? AND owner = ? RETURNING move_id",
                [at, at + timedelta(seconds=ttl), move_id, owner],
            ).fetchall()
        return bool(renewed)

    def release_lease(self, move_id: str, owner: str) -> None:
        with connect(self.path) as con:
            con.execute(
                "DELETE FROM ops.move_leases WHERE move_id = ? AND owner = ?", [move_id, owner]
            )

    def lease(self, move_id: str) -> Lease | None:
        with connect(self.path) as con:
            row = con.execute(f"{LEASE_SQL} WHERE move_id = ?", [move_id]).fetchone()
        return Lease(*row) if row else None

    def stuck_moves(self) -> list[MigrationRow]:
        with connect(self.path) as con:
            return stuck_moves(con)

    def switch_route(
        self,
        move_id: str,
        expected: Route,
        host_id: str,
        address: str,
        port: int,
        detail: dict,
        owner: str,
    ) -> tuple[Route, Step]:
        """The commit point of a migration: compare-and-set the route to the next generation
        and mark the migration `switched`, atomically, only while `owner` holds the lease."""
        at = now()
        with connect(self.path) as con, transaction(con):
            holder = con.execute(
                "SELECT owner FROM ops.move_leases WHERE move_id = ? AND expires_at > ?",
                [move_id, at],
            ).fetchone()
            if holder is None or holder[0] != owner:
                raise RoutingConflict(
                    f"move {move_id}: the lease is not {owner}'s any more "
                    f"({holder[0] if holder else 'expired'}); not switching"
                )
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
