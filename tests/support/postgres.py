"""Start a real throwaway PostgreSQL server (tests, benches): initdb in a fresh directory,
`pg_ctl start` on a free loopback port and a private unix socket, a DSN, then stop and remove.

Postgres refuses to run as root, so as root the server runs as the unprivileged `postgres`
user (created by Debian's `postgresql` package; created here as a system user if missing).
The data directory lives in its own `/tmp` directory that user owns (pytest's tmp_path is
under a root-only directory the server could not enter). `fsync=off`: the data is thrown away.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.sshd import free_tcp_port

POSTGRES_LIB = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
SUPERUSER = "skyshard"
START_ATTEMPTS = 3


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are missing or the server did not start."""


def postgres_bindir() -> Path | None:
    """The newest installed server's bin directory (Debian layout), else `initdb` on PATH."""
    versions = sorted(
        (path for path in POSTGRES_LIB.glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def postgres_missing_reason() -> str | None:
    """Why a real Postgres cannot be started here, or None when it can."""
    if postgres_bindir() is None:
        return "PostgreSQL server binaries are missing (apt-get install -y postgresql)"
    return None


def require_postgres() -> None:
    """For the suites that need a real Postgres: skip where it is missing, fail in CI."""
    reason = postgres_missing_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Postgres tests: {reason}")
        pytest.skip(reason)


@dataclass(frozen=True)
class RunningPostgres:
    """One Postgres server: reach it over loopback TCP (`dsn`) or its unix socket."""

    host: str
    port: int
    socket_dir: Path
    user: str
    dbname: str

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.dbname)

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database on this server; returns its DSN."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name {name!r} is not a plain lower-case identifier")
        with psycopg.connect(self.dsn, autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        return self.dsn_for(name)


def _server_account() -> tuple[list[str], int | None, int | None]:
    """The command prefix to run server binaries, and the uid/gid that must own its files."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        account = pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             "--user-group", SERVER_USER],
            check=True, capture_output=True,
        )  # fmt: skip
        account = pwd.getpwnam(SERVER_USER)
    return ["runuser", "-u", SERVER_USER, "--"], account.pw_uid, account.pw_gid


def _run(prefix: Sequence[str], args: Sequence[str]) -> None:
    result = subprocess.run([*prefix, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise PostgresUnavailable(
            f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr or result.stdout}"
        )


@contextmanager
def running_postgres(
    *, max_connections: int = 200, host: str = "127.0.0.1", clients: str | None = None
) -> Iterator[RunningPostgres]:
    """A fresh Postgres server for the duration of the block (superuser `skyshard`, trust
    authentication on loopback and the private socket only), removed afterwards. `host`: the
    address it listens on besides loopback, `clients`: the network (CIDR) trusted there (a
    test bridge's, for workers in network namespaces)."""
    bindir = postgres_bindir()
    if bindir is None:
        raise PostgresUnavailable(postgres_missing_reason() or "no PostgreSQL")
    prefix, uid, gid = _server_account()
    root = Path(tempfile.mkdtemp(prefix="skyshard-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if uid is not None and gid is not None:
        for path in (root, sockets):
            os.chown(path, uid, gid)
    log = root / "server.log"
    started = False
    try:
        _run(prefix, [str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER,
                      "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"])  # fmt: skip
        if clients is not None:
            with (data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {clients} trust\n")
        for attempt in range(START_ATTEMPTS):
            port = free_tcp_port()
            options = (
                f"-c listen_addresses={','.join(dict.fromkeys(['127.0.0.1', host]))} "
                f"-c port={port} "
                f"-c unix_socket_directories={sockets} -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off "
                f"-c max_connections={max_connections}"
            )
            try:
                _run(prefix, [str(bindir / "pg_ctl"), "start", "-w", "-t", "30", "-D",
                              str(data), "-l", str(log), "-o", options])  # fmt: skip
            except PostgresUnavailable as error:
                # Another process may have taken the port between the probe and the bind.
                if attempt + 1 == START_ATTEMPTS:
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise PostgresUnavailable(f"{error}\n{tail}") from error
                continue
            started = True
            break
        server = RunningPostgres("127.0.0.1", port, sockets, SUPERUSER, "postgres")
        server.create_database(SUPERUSER)
        yield RunningPostgres(host, port, sockets, SUPERUSER, SUPERUSER)
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate",
                 "-w"],
                capture_output=True,
            )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
