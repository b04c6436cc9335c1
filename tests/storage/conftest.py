"""Every storage test runs on both operational-state backends: the embedded DuckDB file and a
real Postgres database (a fresh one per test on the session's throwaway server)."""

from __future__ import annotations

import pytest

from skyshard.storage.state import STATE_URL_ENV


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The backend's name; `SKYSHARD_STATE_URL` is set for Postgres and unset for DuckDB."""
    if request.param == "postgres":
        monkeypatch.setenv(STATE_URL_ENV, request.getfixturevalue("postgres_dsn"))
    else:
        monkeypatch.delenv(STATE_URL_ENV, raising=False)
    return request.param
