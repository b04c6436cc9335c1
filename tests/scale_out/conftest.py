"""A small simulated sky, and the environment a scale-out code location and its workers read."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from skyshard.sim import SkyParams, write_sky

ROOT = Path(__file__).resolve().parent.parent.parent
SMALL_SKY = SkyParams(providers=4, hosts_per_provider=2, shards=16, days=8)


@pytest.fixture(scope="module")
def small_sky(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("sky")
    write_sky(SMALL_SKY, home)
    return home


def scale_out_env(home: Path, folder: Path) -> dict[str, str]:
    """The environment of every process of one scale-out deployment on this machine: the sky,
    the DuckDB file, the ledger and a Dagster home (SQLite storage) under `folder`."""
    dagster_home = folder / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SKYSHARD_HOME": str(home),
        "SKYSHARD_DUCKDB": str(folder / "skyshard.duckdb"),
        "SKYSHARD_LEDGER_DIR": str(folder / "ledger"),
        "DAGSTER_HOME": str(dagster_home),
        "DO_NOT_TRACK": "1",
    }
