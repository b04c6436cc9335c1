"""Where operational state (the `ops` schema) lives, chosen by one setting.

`SKYSHARD_STATE_URL` unset: the embedded DuckDB file (`SKYSHARD_DUCKDB`), written in short
transactions under the file's cross-process writer lock (`skyshard.db.writer_lock`).
`SKYSHARD_STATE_URL=postgresql://...`: a Postgres database through psycopg, so many processes
and machines write at once: READ COMMITTED transactions whose read-then-write steps lock the
row they decide on (`SELECT ... FOR UPDATE`), compare-and-set updates, and a bounded retry of
the whole transaction on serialization failures, deadlocks and lost insert races.

Callers write one SQL text with `?` placeholders; the dialect layer is only what genuinely
differs: placeholders, the row-lock clause (DuckDB has none: its optimistic transactions fail
on conflict and are retried), how a connection is opened and retried, and how concurrent DDL is
kept from racing. Everything else (ON CONFLICT, RETURNING, JSON, DOUBLE PRECISION) is one SQL.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

import duckdb

from skyshard import db

STATE_URL_ENV = "SKYSHARD_STATE_URL"
POSTGRES_SCHEMES = ("postgresql", "postgres")
STATE_LOCK_WAIT_S = 120.0
"""How long a state transaction on the DuckDB file queues for its writer lock: 20 concurrent
migrations each wait for the others' turns (tens of milliseconds each, more on a busy machine)."""
MAX_ATTEMPTS = 12
"""Attempts of one state transaction that keeps losing serialization races (then it raises)."""

T = TypeVar("T")


class StateConfigError(ValueError):
    """`SKYSHARD_STATE_URL` is set to something that is not a Postgres URL."""


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def state_url() -> str | None:
    """The Postgres URL of the operational state, or None for the embedded DuckDB file."""
    url = os.environ.get(STATE_URL_ENV, "").strip()
    if not url:
        return None
    if urlsplit(url).scheme not in POSTGRES_SCHEMES:
        raise StateConfigError(
            f"{STATE_URL_ENV}={redacted(url)!r}: expected a postgresql:// URL, or unset for the "
            "embedded DuckDB file"
        )
    return url


class StateConnection:
    """One open transaction that takes SQL with `?` placeholders and returns all rows."""

    def __init__(self, raw: Any, placeholder: str, for_update: str) -> None:
        self.raw = raw
        self.placeholder = placeholder
        self.for_update = for_update
        """Appended to a SELECT whose row the transaction goes on to change."""

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        cursor = self.raw.execute(sql, list(params))
        # DuckDB wants every result fetched; psycopg has none after DDL or a plain write.
        return cursor.fetchall() if cursor.description is not None else []

    def row(self, sql: str, params: Sequence[object] = ()) -> tuple | None:
        found = self.rows(sql, params)
        return found[0] if found else None


class StateStore(ABC):
    """A backend of operational state: short transactions, retried where the backend says so."""

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the state lives, for messages (no password)."""

    @abstractmethod
    def transact(self, work: Callable[[StateConnection], T]) -> T:
        """Run `work` in one transaction (committed when it returns); `work` may run again when
        a concurrent transaction wins a conflict, so it must only touch the database."""

    @abstractmethod
    def ensure(self, ddl: Sequence[str]) -> None:
        """Create schemas and tables (idempotent DDL), safely from many processes at once."""


class DuckDBState(StateStore):
    """State in the DuckDB file at `path`; each transaction waits up to `wait_s` for the file
    (0: fail at once while another process writes it, for a caller that will ask again)."""

    def __init__(self, path: Path | str, wait_s: float = STATE_LOCK_WAIT_S) -> None:
        self.path = Path(path)
        self.wait_s = wait_s

    @property
    def where(self) -> str:
        return str(self.path)

    def transact(self, work: Callable[[StateConnection], T]) -> T:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with db.connect(self.path, wait_s=self.wait_s) as con, db.transaction(con):
                    return work(StateConnection(con, "?", ""))
            except (duckdb.TransactionException, duckdb.ConstraintException) as error:
                # Threads of one process wrote the same rows, or inserted the same key (DuckDB
                # is optimistic and its ON CONFLICT cannot see uncommitted rows): run again.
                lost_race = not isinstance(error, duckdb.ConstraintException) or (
                    "Duplicate key" in str(error)
                )
                if not lost_race or attempt == MAX_ATTEMPTS:
                    raise
                _backoff(attempt)
        raise AssertionError("unreachable")

    def ensure(self, ddl: Sequence[str]) -> None:
        def create(con: StateConnection) -> None:
            for statement in ddl:
                con.rows(statement)

        self.transact(create)


class PostgresState(StateStore):
    """State in the Postgres database at `url`; one connection per thread, reused."""

    # Schemas created by this process (per URL and DDL): the DDL runs once per process.
    _ensured: ClassVar[set[tuple[str, str]]] = set()
    _ensured_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()

    @property
    def where(self) -> str:
        return redacted(self.url)

    def _connection(self) -> Any:
        import psycopg
        from psycopg.types.string import TextLoader

        held = getattr(self._local, "con", None)
        if held is not None and not held.closed and getattr(self._local, "pid", 0) == os.getpid():
            return held
        con = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        # JSON comes back as its text, as DuckDB returns it: one decoder for both backends.
        con.adapters.register_loader("json", TextLoader)
        con.adapters.register_loader("jsonb", TextLoader)
        self._local.con, self._local.pid = con, os.getpid()
        return con

    def transact(self, work: Callable[[StateConnection], T]) -> T:
        import psycopg

        # A lost insert race (two steps of one move numbered alike) is retried like the rest.
        retried = (
            psycopg.errors.SerializationFailure,
            psycopg.errors.DeadlockDetected,
            psycopg.errors.UniqueViolation,
        )
        for attempt in range(1, MAX_ATTEMPTS + 1):
            con = self._connection()
            try:
                with con.transaction():
                    return work(StateConnection(con, "%s", " FOR UPDATE"))
            except retried:
                if attempt == MAX_ATTEMPTS:
                    raise
                _backoff(attempt)
            except psycopg.OperationalError:
                # The server restarted or the connection dropped: reconnect once more.
                con.close()
                if attempt == MAX_ATTEMPTS:
                    raise
                _backoff(attempt)
        raise AssertionError("unreachable")

    def ensure(self, ddl: Sequence[str]) -> None:
        digest = hashlib.sha256("\n".join(ddl).encode()).hexdigest()
        key = (self.url, digest)
        with self._ensured_guard:
            if key in self._ensured:
                return
        lock_id = int(digest[:15], 16)

        def create(con: StateConnection) -> None:
            # Concurrent CREATE ... IF NOT EXISTS races on Postgres' catalog: one at a time.
            con.rows("SELECT pg_advisory_xact_lock(?)", [lock_id])
            for statement in ddl:
                con.rows(statement)

        self.transact(create)
        with self._ensured_guard:
            self._ensured.add(key)


def _backoff(attempt: int) -> None:
    # Jitter (not security) spreads the retries of writers that collided.
    time.sleep(random.uniform(0.002, 0.01) * min(attempt, 8))  # noqa: S311


def open_state(
    database: Path | str, url: str | None = None, wait_s: float = STATE_LOCK_WAIT_S
) -> StateStore:
    """The state backend: Postgres at `url` (default `SKYSHARD_STATE_URL`), else the DuckDB
    file `database` (waiting up to `wait_s` for it)."""
    url = url if url is not None else state_url()
    return PostgresState(url) if url else DuckDBState(database, wait_s)
