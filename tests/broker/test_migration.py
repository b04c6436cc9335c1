"""End-to-end migrations between two sshd hosts, idempotency, preconditions, the stop rule."""

from __future__ import annotations

import json
import os
import random
import time

import pytest

from skyshard.broker.migration import MigrationSettings, MoveRequest
from skyshard.broker.ops_tables import OpsStore
from skyshard.broker.precopy import PrecopyRule
from skyshard.transport.access import ACTIONS, AccessPolicy
from skyshard.transport.validate import ValidationError
from tests.broker.conftest import CHUNKED, FAST, OPERATOR, SHARD


def test_migration_moves_every_key_including_writes_during_precopy(
    cluster, state_backend: str
) -> None:
    """On both state backends: the Migrator's own state writes, end to end. Every round
    chunked: a round sent whole stops pre-copy when its stat pass finds nothing changed,
    before the writes this test makes after each round (see the round-two tests below)."""
    cluster.place()
    events, progress = [], []

    def write_during_precopy(phase: str) -> None:
        if phase == "precopy":
            rounds = sum(1 for e in events if e.phase == "precopy")
            cluster.write(f"during-{rounds}", b"x" * (300 << 10) + bytes([rounds]))

    migrator = cluster.migrator(CHUNKED, on_event=events.append, on_progress=progress.append,
                                after_step=write_during_precopy)  # fmt: skip
    outcome = migrator.migrate(cluster.request())
    assert outcome.status == "done", outcome.error
    assert outcome.rounds >= 2 and outcome.bytes_sent > 3 << 20
    assert outcome.downtime_ms is not None and outcome.downtime_ms > 0
    assert any(key.startswith("during-") for key in cluster.written)
    cluster.assert_serving_once("host-b")
    assert not (cluster.roots["host-a"] / "shards" / SHARD).exists()
    ops = OpsStore(cluster.db)
    route = ops.route(SHARD)
    assert (route.host_id, route.generation) == ("host-b", 2)
    phases = [step.phase for step in ops.steps("mv-1")]
    assert phases[0] == "accepted" and phases[-1] == "done"
    order = ["frozen", "final_copy", "cutover", "restored", "source_stopped", "target_started",
             "healthy", "switched", "source_cleaned", "routing_pushed"]  # fmt: skip
    assert [p for p in phases if p in order] == order
    assert [e.phase for e in events] == phases
    assert progress and progress[-1].bytes_sent <= outcome.bytes_sent
    assert {p.phase for p in progress} >= {"precopy"}
    for root in cluster.roots.values():
        document = json.loads((root / "routing.json").read_text())
        assert document["shards"][SHARD] == {
            "host_id": "host-b", "address": cluster.hosts["host-b"].sshd.address,
            "port": cluster.port, "generation": 2,
        }  # fmt: skip


def test_same_move_twice_is_a_noop_reporting_the_first_outcome(cluster) -> None:
    cluster.place(blobs=1)
    first = cluster.migrator().migrate(cluster.request())
    second = cluster.migrator().migrate(cluster.request())
    assert first.status == "done" and second.noop
    assert (second.status, second.attempt, second.bytes_sent) == ("done", 1, first.bytes_sent)
    cluster.assert_serving_once("host-b")


def test_stale_move_is_rejected_without_touching_hosts(cluster) -> None:
    cluster.place(blobs=1)
    assert cluster.migrator().migrate(cluster.request()).status == "done"
    stale = cluster.migrator().migrate(cluster.request("mv-2"))
    assert stale.status == "rejected"
    assert "routed to host-b (generation 2), not host-a" in stale.error
    cluster.assert_serving_once("host-b")


def test_move_id_reused_for_another_move_is_refused(cluster) -> None:
    cluster.place(blobs=1)
    cluster.migrator().migrate(cluster.request())
    other = MoveRequest("mv-1", "kv-2", "host-a", "host-b")
    with pytest.raises(ValidationError, match=r"move_id 'mv-1'.*already used"):
        cluster.migrator().migrate(other)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"move_id": "mv;reboot"}, "move_id"),
        ({"shard_id": "../../etc"}, "shard_id"),
        ({"to_host": "host-a"}, "to_host"),
        ({"from_host": "$(id)"}, "from_host"),
        ({"to_port": 0}, "to_port"),
    ],
)
def test_bad_requests_are_refused_before_anything_runs(fields, field) -> None:
    values = {"move_id": "mv-1", "shard_id": SHARD, "from_host": "host-a", "to_host": "host-b"}
    with pytest.raises(ValidationError, match=field):
        MoveRequest(**(values | fields))


def test_unknown_host_is_refused(cluster) -> None:
    with pytest.raises(ValidationError, match="host 'host-z'"):
        cluster.migrator().migrate(MoveRequest("mv-1", SHARD, "host-a", "host-z"))


def test_target_not_granting_receive_is_rejected_before_anything_runs(cluster) -> None:
    cluster.place(blobs=1)
    denials = []
    policy = AccessPolicy.from_mapping(
        {OPERATOR: [("prov-a", ACTIONS), ("prov-b", ACTIONS - {"receive_migration"})]},
        on_denied=denials.append,
    )
    outcome = cluster.migrator(policy=policy).migrate(cluster.request())
    assert (outcome.status, outcome.phase) == ("rejected", "accepted")
    assert "may not receive_migration on provider 'prov-b'" in outcome.error
    assert [d.action for d in denials] == ["receive_migration"]
    assert not (cluster.roots["host-b"] / "bin").exists()  # no helper installed there
    cluster.assert_serving_once("host-a")


def test_stop_rule() -> None:
    rule = PrecopyRule(max_rounds=4, small_bytes=100, shrink_ratio=0.8)
    assert rule.stop_reason([]) is None
    assert rule.stop_reason([10_000]) is None
    assert "at most 100" in rule.stop_reason([10_000, 90])
    assert "stopped shrinking" in rule.stop_reason([10_000, 9_000])
    assert rule.stop_reason([10_000, 5_000, 2_000]) is None
    assert "4 rounds" in rule.stop_reason([10_000, 5_000, 2_000, 1_000])
    with pytest.raises(ValueError, match="max_rounds"):
        PrecopyRule(max_rounds=-1)


def test_stop_and_copy_mode_sends_everything_while_frozen(cluster) -> None:
    cluster.place(blobs=2)
    settings = MigrationSettings(PrecopyRule(max_rounds=0), health_timeout=5)
    outcome = cluster.migrator(settings).migrate(cluster.request())
    assert (outcome.status, outcome.rounds) == ("done", 0)
    phases = [s.phase for s in OpsStore(cluster.db).steps("mv-1")]
    assert "precopy" not in phases and "final_copy" in phases
    cluster.assert_serving_once("host-b")


def test_full_verify_migration(cluster) -> None:
    cluster.place(blobs=2)
    settings = MigrationSettings(FAST.precopy, health_timeout=5, full_verify=True)
    assert cluster.migrator(settings).migrate(cluster.request()).status == "done"
    cluster.assert_serving_once("host-b")


def test_round_two_is_skipped_when_nothing_changed_since_the_whole_copy(cluster) -> None:
    """Round 1 goes whole; the source's stat pass finds nothing changed, so no round 2. A key
    written after that pass still reaches the target: the frozen round sends it."""
    cluster.place()
    time.sleep(1.1)  # past the "racily clean" second: the whole send records every file

    def write_after_round_one(phase: str) -> None:
        if phase == "precopy":
            cluster.write("after-round-1", b"late" * 1000)

    migrator = cluster.migrator(after_step=write_after_round_one)
    outcome = migrator.migrate(cluster.request())
    assert (outcome.status, outcome.rounds) == ("done", 1), outcome.error
    steps = OpsStore(cluster.db).steps("mv-1")
    (round_one,) = [step.detail for step in steps if step.phase == "precopy"]
    assert round_one["whole"] and round_one["stop"] == "nothing changed since sent (stat pass)"
    (final,) = [step.detail for step in steps if step.phase == "final_copy"]
    assert final["chunks_sent"] >= 1  # the late write, sent while frozen
    cluster.assert_serving_once("host-b")


def test_round_two_runs_when_the_stat_pass_finds_changes(cluster) -> None:
    """A file the whole send cannot record as unchanged (its mtime says it may still be
    changing: racily clean) counts in the stat pass, so round 2 runs and sends it."""
    cluster.place()
    extra = cluster.roots["host-a"] / "shards" / SHARD / "state" / "extra.bin"
    extra.write_bytes(random.Random(9).randbytes(1 << 20))
    future = time.time_ns() + 3600 * 10**9
    os.utime(extra, ns=(future, future))
    outcome = cluster.migrator().migrate(cluster.request())
    assert outcome.status == "done", outcome.error
    assert outcome.rounds >= 2
    steps = OpsStore(cluster.db).steps("mv-1")
    round_one, round_two = [step.detail for step in steps if step.phase == "precopy"][:2]
    assert round_one["whole"] and round_one["stop"] is None
    assert round_two["content_bytes_sent"] >= 1 << 20
    moved = cluster.roots["host-b"] / "shards" / SHARD / "state" / "extra.bin"
    assert moved.read_bytes() == random.Random(9).randbytes(1 << 20)
    cluster.assert_serving_once("host-b")
