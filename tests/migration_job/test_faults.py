"""The fault matrix on the namespace topology (own addresses, non-root logins, the system
python3), with host access built from the configuration: link cut, the source's sshd killed
during pre-copy and at the cutover, the target's disk full before and during the transfer, a
failing health check on the target, and routing pushed to a dependent shard's host (a host
that misses every push is shown and caught up later). Each ends with exactly one running copy,
routed, with every key readable there."""

from __future__ import annotations

import contextlib
import random
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from orchestration.migration_job import routing_catch_up
from orchestration.resources import DuckDBFile, build_resources
from sensors.migrations import missed_routing_pushes
from skyshard.broker.execute import PlannedMove, move_hosts
from skyshard.broker.migration import MigrationSettings, Migrator, MoveRequest
from skyshard.broker.ops_tables import OpsStore
from skyshard.broker.precopy import PrecopyRule
from skyshard.cli import main
from skyshard.demo_kv import client
from tests.migration_job.sky import WORKLOADS, add_move
from tests.migration_job.test_lifecycle import cli
from tests.support.hosts import shared_transfer_ca
from tests.support.topology import SkyLayout, _chown, in_host

SETTINGS = MigrationSettings(PrecopyRule(max_rounds=3, small_bytes=256 << 10),
                             health_timeout=5, stall_timeout=3)  # fmt: skip
MOVE = "mv-00000000000000f1"


@contextlib.contextmanager
def migrator(site, **kwargs) -> Iterator[Migrator]:
    with site.access() as hosts:
        yield Migrator(str(site.db), hosts, SETTINGS, transfer_ca=shared_transfer_ca()[0], **kwargs)


def move(site, **kwargs):
    with migrator(site, **kwargs) as run:
        return run.migrate(MoveRequest(MOVE, site.shard, "host-a", "host-b"))


BLOB_SIZE = 1 << 20  # one blob spans several content-defined chunks


def resume(site, retry: bool = False):
    with migrator(site) as run:
        return run.migrate(MoveRequest(MOVE, site.shard, "host-a", "host-b"), retry=retry)


def add_blobs(site, count: int) -> None:
    rng = random.Random(count)
    for index in range(count):
        site.put(f"blob-{index}", rng.randbytes(BLOB_SIZE))


def once(action) -> callable:
    """A progress callback that runs `action` (in a thread) once 2 MiB were sent."""
    fired = threading.Event()

    def on_progress(progress) -> None:
        if progress.bytes_sent > (2 << 20) and not fired.is_set():
            fired.set()
            threading.Thread(target=action).start()

    on_progress.fired = fired  # type: ignore[attr-defined]
    return on_progress


@contextlib.contextmanager
def small_disk(site, tmp_path: Path, size: str) -> Iterator[Path]:
    """host-b's root on a tmpfs of `size` (mounted where host-b's sshd sees it), owned by its
    login user."""
    host = site.hosts["host-b"]
    disk = host.root / "roots" / f"{tmp_path.name}-disk"
    disk.mkdir()
    in_host(host, "mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk))
    try:
        in_host(host, "chown", f"{host.sshd.user}:", str(disk))
        site.roots["host-b"] = disk
        site.sky = site.write()
        yield disk
    finally:
        with site.access() as hosts, contextlib.suppress(Exception):
            hosts["host-b"].runtime().clean(site.shard)
        in_host(host, "umount", "-l", str(disk), check=False)


def test_link_cut_mid_transfer_rolls_back_then_finishes_after_link_up(site, topology) -> None:
    site.place()
    add_blobs(site, 6)
    progress = once(lambda: topology.set_link("host-b", False))
    try:
        outcome = move(site, on_progress=progress)
    finally:
        topology.set_link("host-b", True)
    assert progress.fired.is_set()
    assert outcome.status == "rolled_back", outcome
    site.assert_serving("host-a")
    again = resume(site, retry=True)
    assert again.status == "done", again.error
    site.assert_serving("host-b")


def test_source_sshd_killed_during_precopy_leaves_one_copy_and_a_resumable_move(site) -> None:
    site.place()
    add_blobs(site, 6)
    source = site.hosts["host-a"]
    progress = once(source.kill_sshd)
    try:
        outcome = move(site, on_progress=progress)
        assert progress.fired.is_set()
        # The source copy never stopped serving; the broker cannot reach it to finish.
        assert outcome.status == "rolling_back", outcome
        assert "rollback incomplete" in outcome.error and "host-a" in outcome.error
        route = OpsStore(site.db).route(site.shard)
        assert client.get(route.address, route.port, "key-1") == site.written["key-1"]
    finally:
        source.restart_sshd()
    finished = resume(site)
    assert finished.status == "rolled_back", finished
    site.assert_serving("host-a")
    assert resume(site, retry=True).status == "done"
    site.assert_serving("host-b")


def test_source_sshd_killed_at_the_cutover_leaves_one_copy_and_a_resumable_move(site) -> None:
    site.place()
    source = site.hosts["host-a"]

    def after_step(phase: str) -> None:
        if phase == "cutover":
            source.kill_sshd()

    try:
        outcome = move(site, after_step=after_step)
        assert outcome.status == "rolling_back", outcome
        assert "rollback incomplete" in outcome.error
    finally:
        source.restart_sshd()
    finished = resume(site)
    assert finished.status == "rolled_back", finished
    site.assert_serving("host-a")
    assert resume(site, retry=True).status == "done"
    site.assert_serving("host-b")


def test_target_disk_full_before_the_transfer_is_refused_with_the_numbers(site, tmp_path) -> None:
    site.place()
    add_blobs(site, 12)
    with small_disk(site, tmp_path, "16m") as disk:
        outcome = move(site)
        assert outcome.status == "rolled_back"
        assert "bytes free under" in outcome.error and "needs about" in outcome.error
        site.assert_serving("host-a")
        shard_dir = disk / "shards" / site.shard
        assert in_host(site.hosts["host-b"], "test", "-e", str(shard_dir), check=False).returncode


def test_target_disk_filling_during_the_transfer_is_not_called_corruption(site, tmp_path) -> None:
    site.place()
    add_blobs(site, 12)
    with small_disk(site, tmp_path, "40m") as disk:
        filler = disk / "filler"

        def fill() -> None:
            in_host(site.hosts["host-b"], "dd", "if=/dev/zero", f"of={filler}", "bs=1M",
                    check=False)  # fmt: skip

        outcome = move(site, on_progress=once(fill))
        assert outcome.status == "rolled_back", outcome
        assert outcome.error.startswith("TargetDiskFull: target host-b: disk full under")
        assert "Corrupt" not in outcome.error.split("(was:")[0]
        site.assert_serving("host-a")
        first_error = outcome.error
        assert resume(site).error == first_error  # a re-run keeps the original error
        in_host(site.hosts["host-b"], "rm", str(filler))
        again = resume(site, retry=True)
        assert again.status == "done", again.error
        site.assert_serving("host-b")


def test_a_failing_health_check_on_the_target_rolls_back(site) -> None:
    site.place()
    target = site.hosts["host-b"]
    # Something else holds the shard's port at the target's address: the copy cannot serve.
    squatter = subprocess.Popen(
        [*target.command_prefix, "python3", "-c",
         "import socket, sys, time; s = socket.create_server((sys.argv[1], int(sys.argv[2]))); "
         "print('ready', flush=True); time.sleep(120)", site.address("host-b"), str(site.port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert squatter.stdout.readline().strip() == "ready"
        outcome = move(site)
    finally:
        squatter.kill()
        squatter.wait()
    assert outcome.status == "rolled_back", outcome
    assert outcome.error.startswith("ShardUnhealthy: host-b")
    assert "Address already in use" in outcome.error
    site.assert_serving("host-a")


@pytest.fixture
def dependent(site, topology, tmp_path) -> Iterator[str]:
    """A third host running a shard of a workload that depends on the moved one."""
    site.roots["host-c"] = site.topology.hosts["host-c"].root / "roots" / tmp_path.name
    site.roots["host-c"].mkdir(parents=True)
    _chown(site.roots["host-c"], topology.hosts["host-c"].sshd.user)
    web = {"id": "web", "resources": {"cpu": 1, "mem_gb": 1}, "shard_size": {"cpu": 1},
           "runtime": {"command": ["demo-kv"]}, "current_hosts": ["host-c"],
           "depends_on": [{"workload": "kv", "max_latency_ms": 50}]}  # fmt: skip
    layout = SkyLayout.full(topology, site.roots, [*WORKLOADS, web])
    site.files = lambda: layout  # type: ignore[method-assign]
    site.sky = site.write()
    yield "web-000"


def test_routing_reaches_the_dependent_shards_host_and_a_missed_push_is_retried(
    site, dependent
) -> None:
    site.place()
    with site.access() as hosts:
        hosts["host-c"].runtime().start(dependent, site.port, generation=1,
                                        bind=site.address("host-c"))  # fmt: skip
    OpsStore(site.db).register_route(dependent, "host-c", site.address("host-c"), site.port)
    planned = PlannedMove(MOVE, site.shard, "host-a", "host-b", "prov-a", "prov-b", "running")
    hosts = move_hosts(site.sky, OpsStore(site.db).routes(), planned)
    assert hosts == ["host-a", "host-b", "host-c"]
    dependent_host = site.hosts["host-c"]

    def after_step(phase: str) -> None:
        if phase == "source_cleaned":  # host-c is down for the first push, back for a retry
            dependent_host.kill_sshd()
            threading.Timer(1.5, dependent_host.restart_sshd).start()

    outcome = move(site, after_step=after_step)
    assert outcome.status == "done" and outcome.error is None, outcome
    pushed = [s for s in OpsStore(site.db).steps(MOVE) if s.phase == "routing_pushed"][-1]
    assert sorted(pushed.detail["hosts"]) == ["host-a", "host-b", "host-c"]
    assert pushed.detail["failed"] == {}
    assert pushed.detail["retried"]["host-c"].startswith("attempt 1: ConnectFailed")
    document = (site.roots["host-c"] / "routing.json").read_text()
    assert '"host_id": "host-b"' in document and site.address("host-b") in document
    site.assert_serving("host-b")


def routing_tick(instance: dg.DagsterInstance, db: Path) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, resources={"duckdb": DuckDBFile(path=str(db))}
    )
    return missed_routing_pushes.evaluate_tick(context)


def catch_up(instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    return routing_catch_up.execute_in_process(
        tags=request.tags, resources=build_resources(), instance=instance, raise_on_error=False
    )


def test_a_host_that_misses_every_push_is_shown_and_caught_up_later(
    site, dependent, instance
) -> None:
    site.place()
    add_move(site.db, MOVE, site.shard)
    with site.access() as hosts:
        hosts["host-c"].runtime().start(dependent, site.port, generation=1,
                                        bind=site.address("host-c"))  # fmt: skip
    OpsStore(site.db).register_route(dependent, "host-c", site.address("host-c"), site.port)
    dependent_host = site.hosts["host-c"]

    def after_step(phase: str) -> None:
        if phase == "source_cleaned":  # host-c stays down for every push of the move
            dependent_host.kill_sshd()

    try:
        outcome = move(site, after_step=after_step)
        assert outcome.status == "done", outcome  # a missed dependent never undoes a cutover
        assert outcome.error.startswith("routing push failed")
        [missed] = OpsStore(site.db).routing_backlog()
        assert (missed.host_id, missed.move_id, missed.attempts) == ("host-c", MOVE, 3)
        assert "ConnectFailed" in missed.last_error
        shown = cli("move", "status", MOVE)
        assert "routing out of date on host-c" in " ".join(shown.split())
        first = routing_tick(instance, site.db)
        [request] = first.run_requests
        still_down = catch_up(instance, request)  # retried while the host is still down
        assert not still_down.success
        [missed] = OpsStore(site.db).routing_backlog()
        assert missed.attempts == 4
        by_hand = CliRunner().invoke(main, ["move", "push-routing"])
        assert by_hand.exit_code == 1 and "host-c: missed again (ConnectFailed" in by_hand.output
        assert OpsStore(site.db).routing_backlog()[0].attempts == 5
    finally:
        dependent_host.restart_sshd()
    [again] = routing_tick(instance, site.db).run_requests  # one more attempt: asked again
    assert again.run_key != request.run_key
    assert catch_up(instance, again).success
    assert OpsStore(site.db).routing_backlog() == []
    document = (site.roots["host-c"] / "routing.json").read_text()
    assert '"host_id": "host-b"' in document and site.address("host-b") in document
    assert (
        "every host has the current routing document"
        in routing_tick(instance, site.db).skip_message
    )
    site.assert_serving("host-b")
