"""The operator's day in the Dagster UI, driven in Debian's Chromium by Playwright against a
real `dagster dev` (webserver, daemon, sensors) on a small simulated sky served by embedded SSH
hosts: the asset graph, launching the planning cycle, the plan's chart, approving one proposed
move through the review flow, and the migration the approval starts.

Set SKYSHARD_UI_SCREENSHOTS to a folder to keep the screenshots (docs/ui/ holds the ones the
docs show)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pytest

from skyshard.config import load_sky
from skyshard.embedded_hosts.demo import start_demo_shards
from skyshard.embedded_hosts.run import running_sky
from skyshard.sim import write_sky
from skyshard.sim.ports import free_port_block
from tests.orchestration.conftest import SMALL_SKY

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
APPROVER = "ui-test"
RUN_TIMEOUT = 1200  # seconds for the planning cycle on a loaded 2-core machine

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError("chromium is missing in CI: scripts/system-deps.sh installs it")
    pytest.skip("chromium not installed (scripts/system-deps.sh)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Dev:
    url: str
    duckdb: Path
    log: Path

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", body, {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["data"]

    def runs(self, job: str) -> list[dict]:
        query = """query($job: String) { runsOrError(filter: {pipelineName: $job}) {
            ... on Runs { results { runId status tags { key value } } } } }"""
        return self.graphql(query, {"job": job})["runsOrError"]["results"]

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        """A read-only query, retried while a writer holds the file."""
        deadline = time.monotonic() + 60
        while True:
            try:
                with duckdb.connect(str(self.duckdb), read_only=True) as con:
                    return con.execute(sql, params or []).fetchall()
            except duckdb.IOException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)


def wait_for(what: str, found: Callable[[], object], timeout: float, dev: Dev) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(3)
    raise AssertionError(f"{what} not seen in {timeout:.0f} s; log:\n{dev.log.read_text()[-4000:]}")


def finished_run(dev: Dev, job: str, timeout: float, tag: tuple[str, str] | None = None) -> dict:
    def done() -> dict | None:
        for run in dev.runs(job):
            tags = {t["key"]: t["value"] for t in run["tags"]}
            if tag and tags.get(tag[0]) != tag[1]:
                continue
            if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
                return run
        return None

    return wait_for(f"a finished {job} run", done, timeout, dev)


@pytest.fixture(scope="module")
def dev(tmp_path_factory) -> Iterator[Dev]:
    work = tmp_path_factory.mktemp("ui")
    home = work / "sky"
    start = random.randrange(20000, 60000, 100)
    write_sky(replace(SMALL_SKY, port_base=free_port_block(SMALL_SKY.ports, start=start)), home)
    dagster_home = work / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "orchestration/dagster.yaml", dagster_home / "dagster.yaml")
    port = free_port_block(1, start=random.randrange(20000, 60000, 100))
    database = work / "skyshard.duckdb"
    env = {
        **os.environ,
        "SKYSHARD_HOME": str(home),
        "SKYSHARD_DUCKDB": str(database),
        "SKYSHARD_LEDGER_DIR": str(work / "ledger"),
        "DAGSTER_HOME": str(dagster_home),
        "DO_NOT_TRACK": "1",
        "PYTHONPATH": str(ROOT),
    }
    sky = load_sky(home)
    log = work / "dagster_dev.log"
    with running_sky(home):
        start_demo_shards(sky, home, [s.id for s in sky.shards], db=database)
        with log.open("w") as output:
            process = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("dagster")),
                    *("dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)),
                ],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = Dev(f"http://127.0.0.1:{port}", database, log)
        try:

            def serving() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"dagster dev exited:\n{log.read_text()[-4000:]}")
                try:
                    return bool(running.graphql("{ version }"))
                except OSError:
                    return False

            wait_for("the Dagster UI", serving, 300, running)
            yield running
        finally:
            os.killpg(process.pid, 15)  # dagster dev stops its webserver, daemon, code server
            process.wait(timeout=60)


@pytest.fixture(scope="module")
def page(dev) -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        # The first visit offers a newsletter dialog; answered once, it stays away.
        context.add_init_script(
            "window.localStorage.setItem('dagster.onboarding.community-modal', 'true')"
        )
        yield context.new_page()
        browser.close()


def open_page(page, url: str) -> None:
    page.goto(url)
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.click(timeout=3000)
    except sync_api.TimeoutError:
        pass


def screenshot(page, name: str) -> Path:
    folder = os.environ.get("SKYSHARD_UI_SCREENSHOTS")
    path = Path(folder) / f"{name}.png" if folder else Path(page.context.browser.version) / name
    if folder:
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path))
    return path
