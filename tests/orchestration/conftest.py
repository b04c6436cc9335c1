"""A small simulated sky, materialized once per module through the real Dagster job."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from skyshard.config import load_sky
from skyshard.sim import SkyParams, write_sky

SMALL_SKY = SkyParams(providers=6, hosts_per_provider=2, shards=24, days=8)


@dataclass
class Materialized:
    home: Path
    duckdb: Path
    planted: dict
    result: dg.ExecuteInProcessResult
    defs: dg.Definitions
    instance: dg.DagsterInstance


def run_main_job(home: Path, duckdb: Path, monkeypatch: pytest.MonkeyPatch) -> Materialized:
    """Point the environment at `home`/`duckdb` and run the main job in process."""
    from orchestration.definitions import build_definitions

    monkeypatch.setenv("SKYSHARD_HOME", str(home))
    monkeypatch.setenv("SKYSHARD_DUCKDB", str(duckdb))
    monkeypatch.setenv("SKYSHARD_LEDGER_DIR", str(duckdb.parent / "ledger"))
    defs = build_definitions(load_sky(home))
    job = defs.resolve_job_def("planning_cycle")
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    planted = json.loads((home / "planted.json").read_text())
    return Materialized(home, duckdb, planted, result, defs, instance)


@pytest.fixture(scope="module")
def small_sky(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("sky")
    write_sky(SMALL_SKY, home)
    return home


@pytest.fixture(scope="module")
def materialized(small_sky, tmp_path_factory) -> Materialized:
    with pytest.MonkeyPatch.context() as monkeypatch:
        duckdb = tmp_path_factory.mktemp("db") / "skyshard.duckdb"
        yield run_main_job(small_sky, duckdb, monkeypatch)
