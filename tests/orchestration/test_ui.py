"""The Dagster UI serves the code location: the asset catalog, rendered in headless Chromium,
lists ingestion, dbt and planning assets in one graph."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if CHROMIUM is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("chromium is missing in CI: scripts/system-deps.sh installs it")
    pytest.skip(
        "chromium not installed (scripts/system-deps.sh installs it)", allow_module_level=True
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def webserver(small_sky, tmp_path):
    port = free_port()
    (tmp_path / "dagster.yaml").write_text((ROOT / "orchestration/dagster.yaml").read_text())
    env = {
        **os.environ,
        "SKYSHARD_HOME": str(small_sky),
        "SKYSHARD_DUCKDB": str(tmp_path / "skyshard.duckdb"),
        "DAGSTER_HOME": str(tmp_path),
    }
    command = [
        str(Path(sys.executable).with_name("dagster-webserver")),
        *("-m", "orchestration.definitions", "-h", "127.0.0.1", "-p", str(port)),
    ]
    log = (tmp_path / "webserver.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "webserver.log").read_text()) from None
                time.sleep(1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def render(url: str, profile: Path, *extra: str) -> str:
    completed = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=30000",
            "--window-size=1600,6000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    return completed.stdout


def test_asset_catalog_shows_one_lineage(webserver, tmp_path):
    dom = render(f"{webserver}/assets", tmp_path / "profile", "--dump-dom")
    for asset in (
        "shard_usage",
        "sky_shards",
        "fct_shard_usage_hourly",
        "fct_latency",
        "predicted_bottlenecks",
        "migration_plan",
        "settlement",
    ):
        assert asset in dom, f"{asset} missing from the asset catalog"
    screenshot = tmp_path / "lineage.png"
    render(
        f"{webserver}/asset-groups/ingestion", tmp_path / "profile2", f"--screenshot={screenshot}"
    )
    assert screenshot.stat().st_size > 10_000
