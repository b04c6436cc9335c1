"""The cutover operations over a real sshd: freeze + snapshot in one run, and the target's
handover (restore, start order, start, health in one run) with its fences."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyshard.demo_kv import client
from skyshard.runtime.client import FenceRefused, HandoverAborted, ShardRuntime
from skyshard.runtime.transfer import SendMode, send_between_hosts
from skyshard.transport.access import ACTIONS, AccessDenied, AccessPolicy
from skyshard.transport.chunkstore import CorruptChunk
from tests.runtime.conftest import OPERATOR
from tests.support.hosts import shared_transfer_ca
from tests.support.sshd import free_tcp_port


@pytest.fixture
def moved(host, host_root, allow_all, pool, port):
    """A shard on `src` frozen and snapshotted, its chunks sent to `dst`; both runtimes."""
    session = host.session(allow_all, OPERATOR, pool)
    source = ShardRuntime(session, str(host_root / "src"))
    target = ShardRuntime(session, str(host_root / "dst"))
    source.start("kv-1", port, generation=1)
    source.health("kv-1", port)
    for index in range(3):
        client.put("127.0.0.1", port, f"key-{index}", bytes([index]) * 100_000)
    manifest = source.freeze_and_snapshot("kv-1")
    send_between_hosts(source, target, "kv-1", SendMode.DELTA, manifest=manifest,
                       move_id="mv-1", ca=shared_transfer_ca()[0])  # fmt: skip
    yield source, target, manifest
    source.clean("kv-1")
    target.clean("kv-1")


def test_freeze_and_snapshot_leaves_the_shard_frozen(moved) -> None:
    source, _, manifest = moved
    assert source.status("kv-1").frozen
    assert {entry.path for entry in manifest.files} >= {"data.log"}


def test_handover_restores_starts_and_answers_health_in_one_run(moved, host_root) -> None:
    source, target, manifest = moved
    source.stop("kv-1", kill=True)
    new_port = free_tcp_port()
    with target.handover(manifest, new_port, generation=2, health_timeout=10) as handover:
        summary = handover.restored()
        assert (summary["files"], summary["bytes"]) == (len(manifest.files), manifest.total_size)
        assert not target.status("kv-1").running  # restored, waiting for the start order
        started = handover.start()
        answer = handover.healthy()
    assert started.running and started.generation == 2
    assert answer["pid"] == started.pid and answer["keys"] == 3
    assert client.get("127.0.0.1", new_port, "key-2") == bytes([2]) * 100_000


def test_handover_without_start_order_starts_nothing(moved, host_root, port) -> None:
    _, target, manifest = moved
    with target.handover(manifest, free_tcp_port(), generation=2) as handover:
        handover.restored()
    status = target.status("kv-1")
    assert not status.running and status.state_exists
    assert (host_root / "dst/shards/kv-1/state/data.log").exists()


def test_handover_aborted_by_a_bad_start_order_is_reported(moved) -> None:
    _, target, manifest = moved
    with target.handover(manifest, free_tcp_port(), generation=2) as handover:
        handover.restored()
        handover._channel.sendall(b"go\n")
        handover._channel.shutdown_write()
        with pytest.raises(HandoverAborted, match="restored but not started"):
            handover.healthy()
    assert not target.status("kv-1").running


def test_handover_refuses_an_older_generation_before_restoring(moved, host_root) -> None:
    source, target, manifest = moved
    source.stop("kv-1", kill=True)
    with target.handover(manifest, free_tcp_port(), generation=3) as handover:
        handover.restored()
        handover.start()
        handover.healthy()
    target.stop("kv-1")
    (host_root / "dst/shards/kv-1/state/data.log").unlink()
    handover = target.handover(manifest, free_tcp_port(), generation=2)
    with handover, pytest.raises(FenceRefused, match="generation 2 is older than the fence 3"):
        handover.restored()
    assert not (host_root / "dst/shards/kv-1/state/data.log").exists()


def test_handover_refuses_to_restore_over_a_running_copy(moved, port) -> None:
    source, _, manifest = moved
    source.thaw("kv-1")
    handover = source.handover(manifest, port, generation=1)
    with handover, pytest.raises(FenceRefused, match="is running here; refusing to replace"):
        handover.restored()
    assert source.status("kv-1").running


def test_handover_with_a_missing_chunk_fails_before_any_start(moved, host_root) -> None:
    _, target, manifest = moved
    digest = next(iter(manifest.chunk_sizes()))
    (host_root / "dst/chunks" / digest[:2] / digest).unlink()
    handover = target.handover(manifest, free_tcp_port(), generation=2)
    with handover, pytest.raises(CorruptChunk, match=f"chunk {digest} missing from the store"):
        handover.restored()
    assert not target.status("kv-1").running


@pytest.mark.parametrize("missing", ["start_shard", "receive_migration", "read_telemetry"])
def test_handover_needs_every_action_it_performs(moved, host, pool, host_root, missing) -> None:
    _, _, manifest = moved
    denials = []
    policy = AccessPolicy.from_mapping(
        {OPERATOR: [("prov-*", ACTIONS - {missing})]}, on_denied=denials.append
    )
    target = ShardRuntime(host.session(policy, OPERATOR, pool), str(host_root / "dst"))
    with pytest.raises(AccessDenied, match=f"may not {missing} on provider 'prov-a'"):
        target.handover(manifest, free_tcp_port(), generation=2)
    assert [d.action for d in denials] == [missing]
    assert not Path(host_root / "dst/shards/kv-1").exists()
