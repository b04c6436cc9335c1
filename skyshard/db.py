"""Short-lived DuckDB connections, transactions, and small table helpers every package uses."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import duckdb
import polars as pl

LOCK_WAIT_S = 30.0
"""How long to wait for another process's write lock: its transactions are short."""


class WriterLockTimeout(TimeoutError):
    """Another process held the DuckDB file's writer lock for longer than the caller waits."""


class _ProcessLock:
    """A process's hold on `<db>.lock`, counted: nested connections and the threads of one
    process share the hold (DuckDB itself shares one instance per file within a process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.guard = threading.Lock()
        self.holders = 0
        self.fd: int | None = None
        self.pid = os.getpid()

    def acquire(self, wait_s: float) -> None:
        with self.guard:
            if self.holders == 0:
                self.fd = _flock_waiting(self.path, wait_s)
            self.holders += 1

    def release(self) -> None:
        with self.guard:
            self.holders -= 1
            if self.holders == 0 and self.fd is not None:
                os.close(self.fd)  # closing the descriptor drops the flock
                self.fd = None


_LOCKS: dict[Path, _ProcessLock] = {}
_LOCKS_GUARD = threading.Lock()


def _process_lock(path: Path) -> _ProcessLock:
    key = path.resolve().with_name(path.name + ".lock")
    with _LOCKS_GUARD:
        held = _LOCKS.get(key)
        # A forked child inherits the table but not the hold.
        if held is None or held.pid != os.getpid():
            held = _LOCKS[key] = _ProcessLock(key)
        return held


def _flock_waiting(lock_path: Path, wait_s: float) -> int:
    """An open descriptor of `lock_path` holding its exclusive flock, waited for up to `wait_s`.

    The wait is the kernel's (a blocking flock in a helper thread), not polling: a waiter is
    woken as soon as the holder lets go, so many short transactions queue without starving."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        pass
    taken = threading.Event()
    guard = threading.Lock()
    abandoned = [False]

    def take() -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with guard:
            if abandoned[0]:
                os.close(fd)  # the waiter gave up: let the lock go at once
            else:
                taken.set()

    threading.Thread(target=take, name=f"flock {lock_path.name}", daemon=True).start()
    if taken.wait(wait_s):
        return fd
    with guard:
        if taken.is_set():
            return fd
        abandoned[0] = True
    raise WriterLockTimeout(
        f"{lock_path}: another process held the DuckDB writer lock for over {wait_s:g} s"
    )


@contextmanager
def writer_lock(path: Path | str, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the cross-process writer lock of the DuckDB file at `path` (`<path>.lock`).

    Every `connect` takes it, so skyshard's own processes queue for the file in short turns
    instead of failing on DuckDB's lock; processes that open the file without it (dbt) are
    still waited for by `connect`'s retry."""
    lock = _process_lock(Path(path))
    lock.acquire(wait_s)
    try:
        yield
    finally:
        lock.release()


@contextmanager
def connect(
    path: Path | str, *, read_only: bool = False, wait_s: float = LOCK_WAIT_S
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the DuckDB file for one short unit of work, waiting up to `wait_s` for a lock
    another process holds (DuckDB allows one writer process; see DESIGN.md). Readers that
    must never wait open a published read snapshot instead (`skyshard.storage.snapshots`)."""
    path = Path(path)
    with ExitStack() as held:
        started = time.monotonic()
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(writer_lock(path, wait_s))
        left = max(0.0, wait_s - (time.monotonic() - started))
        con = _open_waiting(path, read_only, left)
        try:
            yield con
        finally:
            _attachments().detach(path, con)


_ALIAS = "skyshard_"
# How long attaching waits for a file this process detached but still holds open.
DETACHED_WAIT_S = 30.0


class _Attachments:
    """One in-memory DuckDB instance per process with each file ATTACHed while in use.

    Creating a DuckDB instance costs about 15 ms of CPU, and a short unit of work opened one
    per file; attaching a file to a living instance costs about 2 ms. The file is attached on
    first use, shared by the process's threads (counted) and detached when the last one
    leaves, so other processes can take the file between units of work as before.

    A file this process already opened as an instance of its own (`duckdb.connect(file)`, as
    a tool or test may) cannot be attached as well: the unit of work joins that instance, as
    DuckDB's own instance cache would. The reverse — `duckdb.connect(file)` while `connect`
    has it attached — fails in DuckDB, so code in a process that uses `connect` opens files
    through it (or a read snapshot)."""

    def __init__(self) -> None:
        self.instance = duckdb.connect()
        self.guard = threading.Lock()
        self.attached: dict[Path, tuple[str, bool, int]] = {}
        self.joined: set[int] = set()
        self.serial = 0
        self.pid = os.getpid()

    def attach(self, path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline, pause = time.monotonic() + DETACHED_WAIT_S, 0.005
        while True:
            try:
                return self._attach(path, read_only)
            except duckdb.ResourceInUseException as error:
                # A file just detached stays open while a transaction on another thread that
                # read every attached database (information_schema) is open: wait for it.
                if f'attached by database "{_ALIAS}' not in str(error):
                    break
                if time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        con = duckdb.connect(str(path), read_only=read_only)
        with self.guard:
            self.joined.add(id(con))
        return con

    def _attach(self, path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
        key = path.resolve()
        with self.guard:
            alias, attached_read_only, users = self.attached.get(key, ("", read_only, 0))
            if users and attached_read_only and not read_only:
                raise duckdb.ConnectionException(
                    f"{path}: open read-only in this process; a writer must wait until it is closed"
                )
            if not users:
                self.serial += 1
                alias = f"{_ALIAS}{self.serial}"
                quoted = str(key).replace("'", "''")
                mode = " (READ_ONLY)" if read_only else ""
                self.instance.execute(f"ATTACH '{quoted}' AS {alias}{mode}")
                attached_read_only = read_only
            self.attached[key] = (alias, attached_read_only, users + 1)
        con = self.instance.cursor()
        con.execute(f"USE {alias}")
        return con

    def detach(self, path: Path, con: duckdb.DuckDBPyConnection) -> None:
        con.close()
        key = path.resolve()
        with self.guard:
            if id(con) in self.joined:
                self.joined.discard(id(con))
                return
            alias, read_only, users = self.attached[key]
            if users > 1:
                self.attached[key] = (alias, read_only, users - 1)
                return
            del self.attached[key]
            self.instance.execute(f"DETACH {alias}")


_ATTACHMENTS: _Attachments | None = None


def _attachments() -> _Attachments:
    global _ATTACHMENTS
    with _LOCKS_GUARD:
        # A forked child must not share its parent's instance.
        if _ATTACHMENTS is None or _ATTACHMENTS.pid != os.getpid():
            _ATTACHMENTS = _Attachments()
        return _ATTACHMENTS


def _open_waiting(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    pause = 0.05
    while True:
        try:
            return _attachments().attach(path, read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: committed when it ends, rolled back if it raises."""
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()


def replace_table(con: duckdb.DuckDBPyConnection, qualified_name: str, frame: pl.DataFrame) -> int:
    """Replace a whole table with `frame` (used for config-derived tables)."""
    schema = qualified_name.split(".")[0]
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.register("_replacement", frame.to_arrow())
    try:
        con.execute(f"CREATE OR REPLACE TABLE {qualified_name} AS SELECT * FROM _replacement")
    finally:
        con.unregister("_replacement")
    return frame.height


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> object:
    """The single value a query returns (DuckDB 2 wants every result fetched to the end)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def table_counts(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, int]:
    names = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = ? ORDER BY 1",
        [schema],
    ).fetchall()
    return {name: scalar(con, f'SELECT count(*) FROM {schema}."{name}"') for (name,) in names}
