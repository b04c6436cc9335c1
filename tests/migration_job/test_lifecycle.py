"""The shard lifecycle on namespace hosts: a move of an unregistered shard is refused before
any remote action; a configured shard started (CLI or job) or adopted (a copy someone started
by hand) is registered at its host's address and then moved by migrate_shard; a stopped shard
is no longer routed."""

from __future__ import annotations

import pwd
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestration.resources import build_resources
from orchestration.shard_job import shard_lifecycle
from skyshard.broker.lifecycle import NOT_REGISTERED, migration_blockers
from skyshard.broker.ops_tables import OpsStore
from skyshard.cli import main
from skyshard.demo_kv import client
from skyshard.demo_kv import server as demo_kv_server
from tests.migration_job.sky import add_move, plan_status
from tests.migration_job.test_job import failure_metadata, output_metadata, run

MOVE = "mv-00000000000000d1"


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_moving_an_unregistered_shard_is_refused_before_any_remote_action(site, instance) -> None:
    add_move(site.db, MOVE, site.shard)
    result = run(instance, MOVE)
    assert not result.success
    metadata = failure_metadata(result)
    assert metadata["outcome"] == "rejected" and plan_status(site.db, MOVE) == "failed"
    assert f"shard {site.shard} is not registered in ops.routing" in metadata["error"]
    assert f"skyshard shard start|adopt {site.shard}" in metadata["error"]
    for root in site.roots.values():
        assert not (root / "bin").exists()  # no helper was installed anywhere
    assert migration_blockers(site.sky, OpsStore(site.db).routes()) == {site.shard: NOT_REGISTERED}


def test_a_configured_shard_started_from_the_cli_is_registered_and_moves(site, instance) -> None:
    out = cli("shard", "start", site.shard, "--port", str(site.port))
    assert f"started {site.shard} on host-a ({site.address('host-a')}:{site.port}" in out
    route = OpsStore(site.db).route(site.shard)
    assert (route.host_id, route.address, route.generation) == ("host-a", site.address("host-a"), 1)
    assert cli("shard", "start", site.shard) == out  # idempotent, same place
    listed = cli("shard", "list")
    assert site.shard in listed and "true" in listed and "yes" in listed
    assert migration_blockers(site.sky, OpsStore(site.db).routes()) == {}
    site.put("k", b"before the move")
    add_move(site.db, MOVE, site.shard)
    result = run(instance, MOVE)
    assert result.success, failure_metadata(result)
    assert output_metadata(result)["outcome"] == "done"
    site.assert_serving("host-b")
    assert OpsStore(site.db).route(site.shard).address == site.address("host-b")

    cli("shard", "stop", site.shard)
    assert OpsStore(site.db).route(site.shard) is None
    with site.access() as hosts:
        assert not hosts["host-b"].runtime().status(site.shard).running
    assert migration_blockers(site.sky, OpsStore(site.db).routes()) == {site.shard: NOT_REGISTERED}
    # Started again where its state and fence are: the data and the generation survive.
    cli("shard", "start", site.shard, "--host", "host-b", "--port", str(site.port))
    route = OpsStore(site.db).route(site.shard)
    assert (route.host_id, route.generation) == ("host-b", 2)
    assert client.get(route.address, route.port, "k") == b"before the move"


def test_the_shard_lifecycle_job_starts_a_shard(site, instance) -> None:
    config = {"action": "start", "shard_id": site.shard, "host_id": "host-b", "port": site.port}
    result = shard_lifecycle.execute_in_process(
        run_config={"ops": {"change_shard": {"config": config}}},
        resources=build_resources(),
        instance=instance,
    )
    assert result.success
    route = OpsStore(site.db).route(site.shard)
    assert (route.host_id, route.address) == ("host-b", site.address("host-b"))
    assert client.checksum(route.address, route.port)


def start_by_hand(site, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A demo_kv copy started outside skyshard, as host-a's login user in its namespace."""
    host = site.hosts["host-a"]
    folder = site.roots["host-a"].parent / f"{site.roots['host-a'].name}-manual"
    state = folder / "state"
    state.mkdir(parents=True)
    script = folder / "kv.py"
    shutil.copyfile(demo_kv_server.__file__, script)
    user = pwd.getpwnam(host.sshd.user)
    shutil.chown(folder, user.pw_uid, user.pw_gid)
    shutil.chown(state, user.pw_uid, user.pw_gid)
    process = subprocess.Popen(
        [*host.command_prefix, "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
         "--clear-groups", "setsid", "/usr/bin/python3", str(script), "--state", str(state),
         "--port", str(site.port), "--address", site.address("host-a")],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "manual.log").open("wb"),
    )  # fmt: skip
    for _ in range(100):
        try:
            client.checksum(site.address("host-a"), site.port, timeout=0.5)
            return process, state
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"the hand-started copy did not answer: {(tmp_path / 'manual.log').read_text()}")


def test_a_copy_started_by_hand_is_adopted_and_moved(site, instance, tmp_path) -> None:
    process, state = start_by_hand(site, tmp_path)
    try:
        client.put(site.address("host-a"), site.port, "hand", b"written before adoption")
        out = cli("shard", "adopt", site.shard, "--host", "host-a", "--port", str(site.port),
                  "--pid", str(process.pid), "--state", str(state))  # fmt: skip
        assert f"adopted {site.shard} on host-a" in out
        site.written["hand"] = b"written before adoption"
        with site.access() as hosts:
            status = hosts["host-a"].runtime().status(site.shard)
        assert (status.running, status.pid) == (True, process.pid)
        add_move(site.db, MOVE, site.shard)
        result = run(instance, MOVE)
        assert result.success, failure_metadata(result)
        assert process.wait(timeout=10) is not None  # the adopted copy was stopped
        site.assert_serving("host-b")
    finally:
        if process.poll() is None:
            process.kill()
