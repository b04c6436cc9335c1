"""The shard runtime over a real sshd: start, health, freeze/thaw, stop, fences, snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyshard.demo_kv import client
from skyshard.runtime import host_helper
from skyshard.runtime.client import FenceRefused, ShardLimits, ShardRuntime, ShardUnhealthy
from skyshard.runtime.transfer import SendMode, send_between_hosts
from skyshard.transport.access import ACTIONS, AccessDenied, AccessPolicy
from skyshard.transport.ssh import ConnectionPool, SshEndpoint, SshSession
from skyshard.transport.validate import ValidationError
from tests.runtime.conftest import OPERATOR
from tests.support.hosts import TestHost, shared_transfer_ca
from tests.support.sshd import free_tcp_port, write_ed25519_key

CGROUPS = host_helper.cgroups_available()


def runtime(host: TestHost, root: Path, policy: AccessPolicy, pool: ConnectionPool):
    return ShardRuntime(host.session(policy, OPERATOR, pool), str(root))


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.parametrize(
    "isolation",
    [
        "signals",
        pytest.param(
            "cgroup", marks=pytest.mark.skipif(not CGROUPS, reason="needs root + cgroup v1")
        ),
    ],
)
def test_start_health_freeze_thaw_stop(host, host_root, allow_all, pool, port, isolation) -> None:
    shards = runtime(host, host_root, allow_all, pool)
    limits = ShardLimits(cpu_millicores=500, memory_bytes=256 << 20)
    status = shards.start("kv-1", port, generation=1, limits=limits, isolation=isolation)
    assert status.running and status.isolation == isolation and status.generation == 1
    assert shards.health("kv-1", port)["status"] == "ok"
    client.put("127.0.0.1", port, "k", b"v")
    assert shards.start("kv-1", port, generation=1).pid == status.pid  # idempotent
    if isolation == "cgroup":
        tag = host_helper.Shard(host_root, "kv-1").cgroup_name
        cpu = Path("/sys/fs/cgroup/cpu", tag)
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert str(status.pid) in (cpu / "cgroup.procs").read_text().split()
        memory = Path("/sys/fs/cgroup/memory", tag, "memory.limit_in_bytes")
        assert int(memory.read_text()) == 256 << 20
    frozen = shards.freeze("kv-1")
    assert frozen.frozen
    if isolation == "signals":
        assert process_state(status.pid) == "T"
    else:
        assert Path("/sys/fs/cgroup/freezer", tag, "freezer.state").read_text().strip() == "FROZEN"
    assert not shards.thaw("kv-1").frozen
    assert client.get("127.0.0.1", port, "k") == b"v"
    stopped = shards.stop("kv-1")
    assert not stopped.running
    assert (host_root / "shards/kv-1/state/data.log").exists()
    if isolation == "cgroup":
        assert not cpu.exists()
    shards.clean("kv-1")
    assert not (host_root / "shards/kv-1").exists()


def test_frozen_copy_is_killed_without_thawing_into_service(
    host, host_root, allow_all, pool, port
) -> None:
    shards = runtime(host, host_root, allow_all, pool)
    pid = shards.start("kv-1", port, generation=1).pid
    shards.health("kv-1", port)
    shards.freeze("kv-1")
    assert not shards.stop("kv-1", kill=True).running
    assert not Path(f"/proc/{pid}").exists() or process_state(pid) == "Z"


def test_fences_refuse_a_second_copy_and_an_older_generation(
    host, host_root, allow_all, pool, port
) -> None:
    shards = runtime(host, host_root, allow_all, pool)
    shards.start("kv-1", port, generation=3)
    with pytest.raises(FenceRefused, match="already runs here for generation 3"):
        shards.start("kv-1", port, generation=4)
    shards.stop("kv-1")
    with pytest.raises(FenceRefused, match="generation 2 is older than the fence 3"):
        shards.start("kv-1", port, generation=2)


def test_health_fails_when_another_process_owns_the_port(
    host, host_root, allow_all, pool, port
) -> None:
    shards = runtime(host, host_root, allow_all, pool)
    other = free_tcp_port()
    shards.start("kv-2", other, generation=1)
    shards.health("kv-2", other)
    shards.start("kv-1", other, generation=1)  # cannot bind: kv-2 holds the port
    with pytest.raises(ShardUnhealthy, match="kv-1"):
        shards.health("kv-1", other, timeout=2)
    shards.clean("kv-1")
    shards.clean("kv-2")


def test_snapshot_then_incremental_restore_on_another_root(
    host, host_root, allow_all, pool, port
) -> None:
    session = host.session(allow_all, OPERATOR, pool)
    source = ShardRuntime(session, str(host_root / "src"))
    target = ShardRuntime(session, str(host_root / "dst"))
    source.start("kv-1", port, generation=1)
    source.health("kv-1", port)
    for index in range(5):
        client.put("127.0.0.1", port, f"blob-{index}", bytes([index]) * 200_000)
    ca = shared_transfer_ca()[0]
    first = source.snapshot("kv-1")
    send_between_hosts(
        source, target, first.shard_id, SendMode.DELTA, manifest=first, move_id="mv-1", ca=ca
    )
    assert target.restore(first)["written"] == len(first.files)
    client.put("127.0.0.1", port, "late", b"x")
    second = source.snapshot("kv-1")
    send_between_hosts(
        source, target, second.shard_id, SendMode.DELTA, manifest=second, move_id="mv-2", ca=ca
    )
    summary = target.restore(second, full_verify=True)
    assert target.restore(second)["reused"] == 6  # kept files stay reusable round after round
    assert summary["files"] == len(second.files) == 6
    assert summary["written"] == 1 and summary["reused"] == 5  # only data.log changed
    source.stop("kv-1")
    for entry in second.files:
        copied = host_root / "dst/shards/kv-1/state" / entry.path
        assert (
            copied.read_bytes() == (host_root / "src/shards/kv-1/state" / entry.path).read_bytes()
        )


def test_restore_refuses_a_manifest_that_does_not_match_its_digest(
    host, host_root, allow_all, pool, port
) -> None:
    shards = runtime(host, host_root, allow_all, pool)
    (host_root / "shards/kv-1/state").mkdir(parents=True)
    (host_root / "shards/kv-1/state/data.log").write_bytes(b"")
    manifest = shards.snapshot("kv-1")
    command = shards.command("restore", "kv-1", "--digest", "0" * 64)
    result = shards.session.run(command, action="receive_migration", stdin=manifest.to_json(),
                                check=False)  # fmt: skip
    assert result.exit_status == host_helper.EXIT_CORRUPT
    assert b"manifest hashes to" in result.stderr


@pytest.fixture
def unreachable(tmp_path: Path, allow_all: AccessPolicy):
    """A session to a closed port: any remote call would fail with ConnectFailed."""
    line = write_ed25519_key(tmp_path / "key")
    endpoint = SshEndpoint("host-x", "prov-x", "127.0.0.1", line, tmp_path / "key",
                           port=free_tcp_port())  # fmt: skip
    with ConnectionPool() as pool:
        yield SshSession(endpoint, allow_all, OPERATOR, pool)


@pytest.mark.parametrize(
    "shard_id", ["../etc", "kv;rm -rf /", "kv 1", "$(id)", "KV", "-kv", "", "a" * 64]
)
def test_bad_shard_ids_are_refused_before_any_connection(tmp_path, unreachable, shard_id) -> None:
    shards = ShardRuntime(unreachable, str(tmp_path))
    with pytest.raises(ValidationError, match="shard_id"):
        shards.start(shard_id, 8080, generation=1)
    with pytest.raises(ValidationError, match="shard_id"):
        shards.clean(shard_id)


def test_bad_ports_and_roots_are_refused(tmp_path, unreachable) -> None:
    with pytest.raises(ValidationError, match="remote_root"):
        ShardRuntime(unreachable, "relative/root")
    with pytest.raises(ValidationError, match="remote_root"):
        ShardRuntime(unreachable, "/srv/../etc")
    shards = ShardRuntime(unreachable, str(tmp_path))
    with pytest.raises(ValidationError, match="port"):
        shards.health("kv-1", 70000)
    with pytest.raises(ValidationError, match="bind"):
        shards.start("kv-1", 8080, generation=1, bind="0.0.0.0;id")


def test_action_not_granted_is_refused_and_reported(host, host_root, pool, port) -> None:
    denials = []
    policy = AccessPolicy.from_mapping(
        {OPERATOR: [("prov-*", ACTIONS - {"start_shard"})]}, on_denied=denials.append
    )
    shards = runtime(host, host_root, policy, pool)
    with pytest.raises(AccessDenied, match="may not start_shard on provider 'prov-a'"):
        shards.start("kv-1", port, generation=1)
    assert [d.action for d in denials] == ["start_shard"]
    assert not (host_root / "shards").exists()
