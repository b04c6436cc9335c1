"""The code location loads through Dagster's own CLI, as `dagster dev` and CI load it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def validate(home: Path, work: Path) -> subprocess.CompletedProcess:
    """`dagster definitions validate` on the code location, for the sky in `home`."""
    (work / "dagster.yaml").write_text((ROOT / "orchestration/dagster.yaml").read_text())
    env = {
        **os.environ,
        "SKYSHARD_HOME": str(home),
        "SKYSHARD_DUCKDB": str(work / "skyshard.duckdb"),
        "DAGSTER_HOME": str(work),
    }
    dagster = Path(sys.executable).with_name("dagster")
    return subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "orchestration.definitions"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dagster_definitions_validate(small_sky, tmp_path):
    completed = validate(small_sky, tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "Validation successful" in output


def test_broken_configuration_fails_validation_with_the_reason(small_sky, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    for name in ("providers.yaml", "workloads.yaml", "policy.yaml"):
        (home / name).write_text((small_sky / name).read_text())
    workloads = home / "workloads.yaml"
    workloads.write_text(workloads.read_text().replace("shard_size:", "shard_sise:", 1))
    completed = validate(home, tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "workloads.yaml" in output
    assert "shard_sise" in output
