"""Suite-wide setup: the dbt manifest exists before any Dagster module is imported, and no test
touches the developer's `data/` folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyshard.storage.state import STATE_URL_ENV
from tests.support.postgres import RunningPostgres, require_postgres, running_postgres
from tests.support.topology import Topology, running_topology

ROOT = Path(__file__).resolve().parent.parent
DBT_DIR = ROOT / "dbt_project"


def pytest_sessionstart(session: pytest.Session) -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    if not (DBT_DIR / "target" / "manifest.json").exists():
        dbt = Path(sys.executable).with_name("dbt")
        subprocess.run(
            [str(dbt), "parse", "--profiles-dir", ".", "--quiet"], cwd=DBT_DIR, check=True
        )


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path, monkeypatch):
    """Each test gets its own DuckDB file, ledger and Dagster home unless it sets them itself."""
    monkeypatch.setenv("SKYSHARD_DUCKDB", str(tmp_path / "skyshard.duckdb"))
    monkeypatch.setenv("SKYSHARD_LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.delenv("SKYSHARD_HOME", raising=False)


@pytest.fixture(scope="session")
def topology() -> Iterator[Topology]:
    """Three namespace hosts with real sshd, non-root logins and the system python3."""
    with running_topology(3) as made:
        yield made


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[RunningPostgres]:
    """One throwaway Postgres server for the session (skipped only off CI without binaries)."""
    require_postgres()
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: RunningPostgres) -> str:
    """A fresh, empty database on the session's Postgres server."""
    return postgres_server.create_database()


@pytest.fixture(params=["duckdb", "postgres"])
def state_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test on both operational-state backends: the embedded DuckDB file
    (`SKYSHARD_STATE_URL` unset) and a fresh database on the session's real Postgres."""
    if request.param == "postgres":
        monkeypatch.setenv(STATE_URL_ENV, request.getfixturevalue("postgres_dsn"))
    else:
        monkeypatch.delenv(STATE_URL_ENV, raising=False)
    return request.param


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test on the namespace topology needs root (CI runs it as root)."""
    for item in items:
        if "topology" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.root)
