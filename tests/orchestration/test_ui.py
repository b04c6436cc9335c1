"""The operator's day in the Dagster UI, driven in Debian's Chromium by Playwright against a
real `dagster dev` (webserver, daemon, sensors) on a small simulated sky served by embedded SSH
hosts: the asset graph, launching the planning cycle, the plan's chart, approving one proposed
move through the review flow, and the migration the approval starts.

Set SKYSHARD_UI_SCREENSHOTS to a folder to keep the screenshots (docs/ui/ holds the ones the
docs show)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
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
from tests.ports import free_test_ports

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


def routing_updates(dev: Dev) -> list[str]:
    """Run ids of the latest materializations of the routing asset."""
    query = """{ assetOrError(assetKey: {path: ["ops", "routing"]}) {
        ... on Asset { assetMaterializations(limit: 10) { runId } } } }"""
    asset = dev.graphql(query)["assetOrError"]
    return [m["runId"] for m in asset.get("assetMaterializations", [])]


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


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C to dagster dev's process group (webserver, daemon, code servers, run workers);
    killed if it has not stopped in 30 s."""
    os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def dev(tmp_path_factory) -> Iterator[Dev]:
    work = tmp_path_factory.mktemp("ui")
    home = work / "sky"
    sky_ports = free_test_ports(SMALL_SKY.ports)
    write_sky(replace(SMALL_SKY, port_base=sky_ports), home)
    dagster_home = work / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "orchestration/dagster.yaml", dagster_home / "dagster.yaml")
    port = free_port_block(1, start=sky_ports + SMALL_SKY.ports)  # never inside the sky's block
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
            stop(process)


@pytest.fixture(scope="module")
def page(dev) -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        # A community newsletter dialog pops up once, at any moment: skip it whenever it
        # blocks an action.
        page.add_locator_handler(
            page.get_by_text("Join the Dagster community"),
            lambda _: page.get_by_role("button", name="Skip").click(),
        )
        yield page
        browser.close()


def open_page(page, url: str) -> None:
    page.goto(url)


def screenshot(page, name: str) -> None:
    folder = os.environ.get("SKYSHARD_UI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def shown_chart(page, url: str, asset: str, entry: str) -> dict:
    """Open the metadata entry `entry` of `asset`'s latest materialization; the size of the PNG
    it shows."""
    open_page(page, f"{url}/assets/{asset}?view=events")
    page.locator("tr", has_text=entry).get_by_text("[Show Markdown]").click()
    image = page.locator('img[src^="data:image/png;base64,"]').first
    image.wait_for(timeout=60_000)
    return image.bounding_box()


@pytest.mark.timeout(RUN_TIMEOUT + 1800)  # the planning cycle, then review and migration
def test_operators_day(dev, page):
    # The asset graph: the planning group with the plan and its reviewable moves.
    open_page(page, f"{dev.url}/locations/skyshard/asset-groups/planning")
    for asset in ("candidate_scores", "migration_plan", "proposed_moves", "policy_backtest"):
        page.get_by_text(asset, exact=True).first.wait_for(timeout=60_000)
    screenshot(page, "asset-graph")

    # Launch the planning cycle from its job page and see the run succeed.
    open_page(page, f"{dev.url}/locations/skyshard/jobs/planning_cycle")
    page.get_by_role("button", name="Materialize all").click()
    run = finished_run(dev, "planning_cycle", RUN_TIMEOUT)
    open_page(page, f"{dev.url}/runs/{run['runId']}")
    page.get_by_text("Success", exact=True).first.wait_for(timeout=60_000)
    assert run["status"] == "SUCCESS", dev.log.read_text()[-4000:]
    screenshot(page, "planning-run")

    # The plan's metadata shows the saving-by-term chart as an image, the bottlenecks the
    # forecasts of the shards at risk.
    box = shown_chart(page, dev.url, "plan/migration_plan", "saving_by_term")
    assert box and box["width"] > 200 and box["height"] > 80
    screenshot(page, "plan-saving-chart")
    box = shown_chart(page, dev.url, "forecast/predicted_bottlenecks", "forecast_vs_capacity")
    assert box and box["width"] > 200 and box["height"] > 80
    screenshot(page, "forecast-chart")

    # Approve one proposed move through the review flow: pick it as the partition, fill the
    # typed config, launch.
    [(move_id, shard_id, to_host)] = dev.query(
        "select move_id, shard_id, to_host_id from plan.migration_plan "
        "where status = 'proposed' order by saving_per_day desc nulls last, move_id limit 1"
    )
    open_page(page, f"{dev.url}/assets/proposed_moves?view=events&partition={move_id}")
    page.get_by_text("saving/run_cost", exact=True).first.wait_for(timeout=60_000)
    screenshot(page, "proposed-move")
    open_page(page, f"{dev.url}/locations/skyshard/jobs/review_plan/playground")
    page.get_by_placeholder("Partition").click()
    page.get_by_text(move_id, exact=True).first.click()
    page.locator(".CodeMirror").first.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(
        "ops:\n  review_move:\n    config:\n      decision: approve\n"
        f"      by: {APPROVER}\n      reason: approved in the UI test\n"
    )
    screenshot(page, "review-launchpad")
    page.get_by_role("button", name="Launch Run").click()
    review = finished_run(dev, "review_plan", 600, ("dagster/partition", move_id))
    assert review["status"] == "SUCCESS", dev.log.read_text()[-4000:]
    [(status, approved_by)] = dev.query(
        "select status, approved_by from plan.migration_plan where move_id = ?", [move_id]
    )
    assert approved_by == APPROVER and status in ("approved", "running", "done")

    # The approved_migrations sensor starts migrate_shard for it; the shard ends on the target.
    migration = finished_run(dev, "migrate_shard", 900, ("skyshard/move_id", move_id))
    assert migration["status"] == "SUCCESS", dev.log.read_text()[-4000:]
    assert dev.query("select host_id from ops.routing where shard_id = ?", [shard_id]) == [
        (to_host,)
    ]
    assert migration["runId"] in routing_updates(dev)
    open_page(page, f"{dev.url}/runs/{migration['runId']}")
    page.get_by_text("Success", exact=True).first.wait_for(timeout=60_000)
    screenshot(page, "migration-run")
