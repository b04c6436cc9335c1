"""Schema `ops` (migrations, their steps, routing, leases, routing pushes a host missed) written
in short transactions, on the state backend `SKYSHARD_STATE_URL` chooses (`skyshard.storage`).

Every method is one short transaction: on the embedded DuckDB file it opens the file under its
writer lock, writes or reads, and closes it again, so a migration never holds the lock while it
transfers data; on Postgres it locks the rows it decides on, and is retried when it loses a race.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

from skyshard.plans import statuses as plan_statuses
from skyshard.plans.store import VIEW_DDL
from skyshard.storage.snapshots import StateMirror
from skyshard.storage.state import DuckDBState, StateConnection, StateStore, open_state

DDL = (
    "CREATE SCHEMA IF NOT EXISTS ops",
    """CREATE TABLE IF NOT EXISTS ops.migrations (
        move_id VARCHAR PRIMARY KEY, shard_id VARCHAR NOT NULL, from_host VARCHAR NOT NULL,
        to_host VARCHAR NOT NULL, phase VARCHAR NOT NULL, status VARCHAR NOT NULL,
        attempt INTEGER NOT NULL, started_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL,
        bytes_sent BIGINT NOT NULL, rounds INTEGER NOT NULL, downtime_ms DOUBLE PRECISION,
        error VARCHAR)""",
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
TABLES = ("ops.migrations", "ops.migration_steps", "ops.routing", "ops.move_leases",
          "ops.routing_backlog")  # fmt: skip
NON_TERMINAL = ("running", "rolling_back")
NON_TERMINAL_SQL = ", ".join(f"'{status}'" for status in NON_TERMINAL)


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


ROUTE_SQL = "SELECT shard_id, host_id, address, port, generation, updated_at FROM ops.routing"


def _insert_step(
    con: StateConnection, move_id: str, phase: str, detail: dict, at: datetime
) -> Step:
    (seq,) = con.row(
        "SELECT coalesce(max(seq), 0) + 1 FROM ops.migration_steps WHERE move_id = ?", [move_id]
    ) or (1,)
    con.rows(
        "INSERT INTO ops.migration_steps VALUES (?, ?, ?, ?, ?)",
        [move_id, seq, phase, at, json.dumps(detail, sort_keys=True, default=str)],
    )
    return Step(move_id, seq, phase, at, detail)


def _stuck_moves(con: StateConnection) -> list[MigrationRow]:
    columns = ", ".join(f"m.{name}" for name in COLUMNS)
    rows = con.rows(
        f"SELECT {columns} FROM ops.migrations m LEFT JOIN ops.move_leases l USING (move_id) "
        f"WHERE m.status IN ({NON_TERMINAL_SQL}) AND (l.move_id IS NULL OR l.expires_at <= ?) "
        "ORDER BY m.updated_at",
        [now()],
    )
    return [MigrationRow(*row) for row in rows]


class OpsStore:
    """The `ops` tables: in the DuckDB file at `path`, or in Postgres when `state_url` (default
    `SKYSHARD_STATE_URL`) is set."""

    def __init__(self, path: Path | str, state_url: str | None = None) -> None:
        self.path = Path(path)
        self.state: StateStore = open_state(self.path, state_url)
        self.state.ensure(DDL)

    def _one(self, sql: str, params: list[object]) -> tuple | None:
        return self.state.transact(lambda con: con.row(sql, params))

    def _all(self, sql: str, params: list[object] | None = None) -> list[tuple]:
        return self.state.transact(lambda con: con.rows(sql, params or []))

    def migration(self, move_id: str) -> MigrationRow | None:
        row = self._one(f"SELECT {', '.join(COLUMNS)} FROM ops.migrations WHERE move_id = ?",
                        [move_id])  # fmt: skip
        return MigrationRow(*row) if row else None

    def create_migration(self, move_id: str, shard_id: str, from_host: str, to_host: str) -> None:
        at = now()
        self._all(
            "INSERT INTO ops.migrations VALUES "
            "(?, ?, ?, ?, 'accepted', 'running', 0, ?, ?, 0, 0, NULL, NULL) "
            "ON CONFLICT (move_id) DO NOTHING",
            [move_id, shard_id, from_host, to_host, at, at],
        )

    def update_migration(self, move_id: str, **values: object) -> None:
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown ops.migrations columns: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in values)
        self._all(
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

        def record(con: StateConnection) -> list[Step]:
            steps = [_insert_step(con, move_id, s.phase, s.detail, s.at) for s in pending]
            con.rows(
                f"UPDATE ops.migrations SET {assignments} WHERE move_id = ?",
                [now(), *values.values(), move_id],
            )
            return steps

        return self.state.transact(record)

    def steps(self, move_id: str) -> list[Step]:
        rows = self._all(
            'SELECT move_id, seq, phase, "at", detail FROM ops.migration_steps '
            "WHERE move_id = ? ORDER BY seq",
            [move_id],
        )
        return [Step(m, s, p, a, json.loads(d) if d else {}) for m, s, p, a, d in rows]

    def route(self, shard_id: str) -> Route | None:
        row = self._one(f"{ROUTE_SQL} WHERE shard_id = ?", [shard_id])
        return Route(*row) if row else None

    def routes(self) -> list[Route]:
        return [Route(*row) for row in self._all(f"{ROUTE_SQL} ORDER BY shard_id")]

    def register_route(
        self, shard_id: str, host_id: str, address: str, port: int, generation: int = 1
    ) -> Route:
        """Record where a shard was placed (at `generation`, default 1); refuses to overwrite
        another placement."""

        def register(con: StateConnection) -> Route:
            con.rows(
                "INSERT INTO ops.routing VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (shard_id) DO NOTHING",
                [shard_id, host_id, address, port, generation, now()],
            )
            return Route(*con.row(f"{ROUTE_SQL} WHERE shard_id = ?", [shard_id]))

        route = self.state.transact(register)
        if (route.host_id, route.address, route.port) != (host_id, address, port):
            raise RoutingConflict(
                f"shard {shard_id} is already routed to {route.host_id} "
                f"({route.address}:{route.port}, generation {route.generation})"
            )
        return route

    def routing_missed(self, host_id: str, move_id: str, attempts: int, error: str) -> None:
        """`host_id` missed `attempts` more routing pushes (the latest for `move_id`)."""
        at = now()
        self._all(
            "INSERT INTO ops.routing_backlog VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (host_id) DO UPDATE SET move_id = excluded.move_id, "
            "attempts = ops.routing_backlog.attempts + excluded.attempts, "
            "last_error = excluded.last_error, updated_at = excluded.updated_at",
            [host_id, move_id, at, attempts, error, at],
        )

    def routing_delivered(self, host_ids: list[str]) -> None:
        """These hosts hold the current routing document now."""
        if host_ids:
            marks = ", ".join("?" for _ in host_ids)
            self._all(f"DELETE FROM ops.routing_backlog WHERE host_id IN ({marks})", host_ids)

    def routing_backlog(self) -> list[MissedPush]:
        """Hosts whose routing document is out of date."""
        return [MissedPush(*row) for row in self._all(BACKLOG_SQL)]

    def unregister_route(self, expected: Route) -> None:
        """Drop a shard's route if it is still `expected` (its host and generation)."""
        gone = self._all(
            "DELETE FROM ops.routing WHERE shard_id = ? AND host_id = ? AND generation = ? "
            "RETURNING shard_id",
            [expected.shard_id, expected.host_id, expected.generation],
        )
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

        def take(con: StateConnection) -> tuple[Lease, Lease | None]:
            row = con.row(f"{LEASE_SQL} WHERE move_id = ?{con.for_update}", [move_id])
            held = Lease(*row) if row else None
            if held is not None and held.owner != owner and held.live(at):
                return held, None
            acquired = held.acquired_at if held is not None and held.owner == owner else at
            lease = Lease(move_id, owner, acquired, at, at + timedelta(seconds=ttl))
            # Conditional, so a broker that inserted first (no row to lock above) keeps it.
            taken = con.rows(
                "INSERT INTO ops.move_leases VALUES (?, ?, ?, ?, ?) ON CONFLICT (move_id) "
                "DO UPDATE SET owner = excluded.owner, acquired_at = excluded.acquired_at, "
                "heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at "
                "WHERE ops.move_leases.owner = excluded.owner "
                "OR ops.move_leases.expires_at <= excluded.heartbeat_at RETURNING move_id",
                [move_id, owner, acquired, at, lease.expires_at],
            )
            if not taken:
                return Lease(*con.row(f"{LEASE_SQL} WHERE move_id = ?", [move_id])), None
            return lease, held if held is not None and held.owner != owner else None

        return self.state.transact(take)

    def renew_lease(self, move_id: str, owner: str, ttl: float) -> bool:
        """Extend `owner`'s lease; False when it is not `owner`'s any more (taken over)."""
        at = now()
        renewed = self._all(
            "UPDATE ops.move_leases SET heartbeat_at = ?, expires_at = ? "
            "WHERE move_id = ? AND owner = ? RETURNING move_id",
            [at, at + timedelta(seconds=ttl), move_id, owner],
        )
        return bool(renewed)

    def release_lease(self, move_id: str, owner: str) -> None:
        self._all("DELETE FROM ops.move_leases WHERE move_id = ? AND owner = ?", [move_id, owner])

    def lease(self, move_id: str) -> Lease | None:
        row = self._one(f"{LEASE_SQL} WHERE move_id = ?", [move_id])
        return Lease(*row) if row else None

    def stuck_moves(self) -> list[MigrationRow]:
        """Moves left non-terminal with no live lease: their broker died or gave up."""
        return self.state.transact(_stuck_moves)

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

        def switch(con: StateConnection) -> tuple[Route, Step]:
            holder = con.row(
                f"SELECT owner FROM ops.move_leases WHERE move_id = ? AND expires_at > ?"
                f"{con.for_update}",
                [move_id, at],
            )
            if holder is None or holder[0] != owner:
                raise RoutingConflict(
                    f"move {move_id}: the lease is not {owner}'s any more "
                    f"({holder[0] if holder else 'expired'}); not switching"
                )
            changed = con.rows(
                "UPDATE ops.routing SET host_id = ?, address = ?, port = ?, "
                "generation = generation + 1, updated_at = ? "
                "WHERE shard_id = ? AND host_id = ? AND generation = ? RETURNING generation",
                [host_id, address, port, at, expected.shard_id, expected.host_id,
                 expected.generation],
            )  # fmt: skip
            if not changed:
                raise RoutingConflict(
                    f"routing of shard {expected.shard_id} is no longer {expected.host_id} "
                    f"generation {expected.generation}; not switching"
                )
            step = _insert_step(con, move_id, "switched", detail, at)
            con.rows(
                "UPDATE ops.migrations SET phase = 'switched', updated_at = ? WHERE move_id = ?",
                [at, move_id],
            )
            return Route(expected.shard_id, host_id, address, port, changed[0][0], at), step

        return self.state.transact(switch)


def routed_hosts(database: Path | str) -> dict[str, str]:
    """Where the routing table says each migrated shard runs now (shard id → host id)."""
    return {route.shard_id: route.host_id for route in OpsStore(database).routes()}


def ops_mirror(database: Path | str) -> StateMirror | None:
    """The `ops` tables (the broker's and the plan statuses) to copy into read snapshots of
    `database`, and the `plan` views that join them: None when they live in the DuckDB file
    itself (the embedded backend), else the Postgres tables."""
    state = open_state(database)
    if isinstance(state, DuckDBState):
        return None  # and the file is not touched: a read stays a read
    ddl = (*DDL, *plan_statuses.DDL)
    state.ensure(ddl)
    return StateMirror(state, ddl, (*TABLES, *plan_statuses.TABLES), VIEW_DDL)
