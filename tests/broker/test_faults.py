"""The fault matrix: every fault ends with one running copy, intact data and a clear error."""

from __future__ import annotations

import hashlib
import shutil

import pytest
import zstandard

from skyshard.broker.execute import is_transient
from skyshard.broker.migration import LATE_PHASES, PHASES, TERMINAL
from skyshard.broker.ops_tables import OpsStore
from skyshard.runtime import host_helper
from skyshard.runtime.client import Handover, ShardRuntime
from tests.broker.conftest import CHUNKED, SHARD, SimulatedCrash

# One crash point per persisted write: late phases are written with the phase after them.
CRASH_POINTS = [phase for phase in PHASES if phase not in LATE_PHASES and phase != "done"]


def cut_when(threshold: int, action):
    """A progress callback that runs `action` once, when the bytes sent pass `threshold`."""
    fired = []

    def on_progress(progress) -> None:
        if progress.bytes_sent >= threshold and not fired:
            fired.append(progress)
            action()

    return on_progress, fired


def assert_rolled_back(cluster, outcome, message: str) -> None:
    assert outcome.status == "rolled_back", outcome
    assert message in outcome.error
    cluster.assert_serving_once("host-a")
    assert not (cluster.roots["host-b"] / "shards" / SHARD).exists()
    assert OpsStore(cluster.db).route(SHARD).generation == 1


def test_connection_drop_mid_transfer_rolls_back_then_retry_finishes(cluster) -> None:
    cluster.place(blobs=8)
    source = cluster.hosts["host-a"].endpoint()  # the broker's link to the pushing source
    on_progress, fired = cut_when(
        2 << 20, lambda: cluster.pool.client(source).get_transport().close()
    )
    outcome = cluster.migrator(on_progress=on_progress).migrate(cluster.request())
    assert fired
    assert_rolled_back(cluster, outcome, "")
    # The drop is told as a network failure (worth a retry), not as corruption or a refusal.
    assert is_transient(outcome.error.split(";")[0]), outcome.error
    assert cluster.migrator().migrate(cluster.request()).noop
    retried = cluster.migrator().migrate(cluster.request(), retry=True)
    assert (retried.status, retried.attempt) == ("done", 2)
    cluster.assert_serving_once("host-b")


@pytest.mark.slow
def test_target_sshd_killed_keeps_the_source_and_resumes_after_restart(cluster) -> None:
    cluster.place(blobs=8)
    target = cluster.hosts["host-b"]
    on_progress, fired = cut_when(2 << 20, target.kill_sshd)
    try:
        outcome = cluster.migrator(on_progress=on_progress).migrate(cluster.request())
        assert fired and outcome.status == "rolled_back"
        assert "target: not cleaned" in outcome.error
        cluster.assert_serving_once("host-a")
    finally:
        target.restart_sshd()
    retried = cluster.migrator().migrate(cluster.request(), retry=True)
    assert retried.status == "done", retried.error
    cluster.assert_serving_once("host-b")


def first_chunk_digest(path) -> str:
    """The SHA-256 of the file's first content-defined chunk, as the host helper cuts it."""
    data = path.read_bytes()
    _, length = host_helper.chunk_spans(data, host_helper.DEFAULT_CHUNKS)[0]
    return hashlib.sha256(data[:length]).hexdigest()


def test_chunk_corrupted_in_the_source_store_is_refused_by_the_target(cluster) -> None:
    cluster.place(blobs=2)
    runtime = cluster.access()["host-a"].runtime()
    blob = next((cluster.roots["host-a"] / "shards" / SHARD / "state" / "blobs").iterdir())
    digest = first_chunk_digest(blob)
    runtime.snapshot(SHARD)  # stores the chunks; later snapshots reuse them (file unchanged)
    stored = cluster.roots["host-a"] / "chunks" / digest[:2] / digest
    lie = zstandard.ZstdCompressor().compress(b"not the content of the chunk")
    stored.write_bytes(lie)
    outcome = cluster.migrator(CHUNKED).migrate(cluster.request())
    assert_rolled_back(cluster, outcome, "CorruptChunk")
    assert f"chunk {digest}: content hashes to" in outcome.error
    assert not (cluster.roots["host-b"] / "chunks" / digest[:2] / digest).exists()
    stored.unlink()
    (cluster.roots["host-a"] / "shards" / SHARD / "snapshot-cache.json").unlink()
    assert cluster.migrator().migrate(cluster.request(), retry=True).status == "done"
    cluster.assert_serving_once("host-b")


def test_chunk_corrupted_on_target_disk_is_detected_and_dropped(cluster) -> None:
    cluster.place(blobs=2)
    blob = next((cluster.roots["host-a"] / "shards" / SHARD / "state" / "blobs").iterdir())
    digest = first_chunk_digest(blob)
    stored = cluster.roots["host-b"] / "chunks" / digest[:2] / digest
    stored.parent.mkdir(parents=True)
    stored.write_bytes(zstandard.ZstdCompressor().compress(b"bit rot"))
    for path in (stored.parent.parent, stored.parent, stored):  # as if the host wrote it
        shutil.chown(path, cluster.hosts["host-b"].sshd.user, cluster.hosts["host-b"].sshd.user)
    outcome = cluster.migrator(CHUNKED).migrate(cluster.request())
    assert_rolled_back(cluster, outcome, f"chunk {digest}: content hashes to")
    assert not stored.exists()  # dropped, so the retry sends it again
    assert cluster.migrator().migrate(cluster.request(), retry=True).status == "done"
    cluster.assert_serving_once("host-b")


@pytest.mark.slow
@pytest.mark.parametrize("crash_after", CRASH_POINTS)
def test_broker_killed_after_each_step_then_rerun_finishes(cluster, crash_after) -> None:
    cluster.place(blobs=1)

    def crash(phase: str) -> None:
        if phase == crash_after:
            raise SimulatedCrash(phase)

    with pytest.raises(SimulatedCrash):
        cluster.migrator(after_step=crash).migrate(cluster.request())
    row = OpsStore(cluster.db).migration("mv-1")
    assert row.status not in TERMINAL and row.phase == crash_after  # resumable
    assert len(cluster.running_copies()) <= 1  # never two, even mid-crash
    outcome = cluster.migrator().migrate(cluster.request())
    assert outcome.status == "done", outcome.error
    cluster.assert_serving_once("host-b")
    steps = [s.phase for s in OpsStore(cluster.db).steps("mv-1")]
    assert "resumed" in steps
    if PHASES.index(crash_after) < PHASES.index("switched"):
        # A crash before the first attempt counted itself leaves attempt 0 behind.
        assert "rolled_back" in steps
        assert outcome.attempt == (1 if crash_after == "accepted" else 2)
    else:
        assert "rolled_back" not in steps and outcome.attempt == 1


@pytest.mark.slow
def test_broker_killed_while_the_target_serves_before_its_steps_are_written(
    cluster, monkeypatch
) -> None:
    """The riskiest unpersisted moment: the source is dead, the target healthy, the last
    persisted phase is `cutover`. The re-run must stop the target before restarting the source.
    """
    cluster.place(blobs=1)
    honest = Handover.healthy

    def crash_once_healthy(self) -> dict:
        honest(self)
        assert cluster.running_copies() == ["host-b"]
        raise SimulatedCrash("target healthy, late steps not written")

    monkeypatch.setattr(Handover, "healthy", crash_once_healthy)
    with pytest.raises(SimulatedCrash):
        cluster.migrator().migrate(cluster.request())
    monkeypatch.undo()
    assert OpsStore(cluster.db).migration("mv-1").phase == "cutover"
    outcome = cluster.migrator().migrate(cluster.request())
    assert outcome.status == "done", outcome.error
    cluster.assert_serving_once("host-b")
    steps = [s.phase for s in OpsStore(cluster.db).steps("mv-1")]
    assert steps.count("cutover") == 2 and "rolled_back" in steps and outcome.attempt == 2


def test_handover_not_started_when_the_source_cannot_be_killed(cluster, monkeypatch) -> None:
    """The fence order: no start order reaches the target unless the source copy is dead."""
    cluster.place(blobs=1)

    def stop_fails(self, shard_id: str, *, kill: bool = False):
        raise OSError("source host unreachable")

    monkeypatch.setattr(ShardRuntime, "stop", stop_fails)
    outcome = cluster.migrator().migrate(cluster.request())
    monkeypatch.undo()
    assert_rolled_back(cluster, outcome, "source host unreachable")
    steps = [s.phase for s in OpsStore(cluster.db).steps("mv-1")]
    assert "restored" in steps and "source_stopped" not in steps
    assert "target_started" not in steps
