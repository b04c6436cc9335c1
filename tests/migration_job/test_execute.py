"""run_move, the domain function behind the job: transient failures stay retryable and a
retry finishes the move; failure classification; progress lines."""

from __future__ import annotations

import pytest

from skyshard.broker.execute import ProgressLog, is_transient, run_move
from skyshard.broker.from_config import broker_policy, host_accesses
from skyshard.broker.migration import MigrationProgress
from skyshard.config import paths
from skyshard.ledger import Ledger
from skyshard.plans.status import PlanError
from skyshard.transport.ssh import ConnectionPool
from skyshard.trust.events import EntryType
from tests.migration_job.conftest import FAST_SSH
from tests.migration_job.sky import add_move, plan_status
from tests.support.hosts import shared_transfer_ca

CA = shared_transfer_ca()[0]
MOVE = "mv-00000000000000c1"


def test_a_transient_failure_stays_running_and_a_retry_finishes_it(site) -> None:
    site.place()
    add_move(site.db, MOVE, site.shard)
    target = site.hosts["host-b"]
    with ConnectionPool(FAST_SSH) as pool:
        policy = broker_policy(site.sky)

        def hosts_for(move):
            return host_accesses(site.sky, (move.from_host, move.to_host), pool, policy)

        target.sshd.stop()
        try:
            first = run_move(site.db, MOVE, hosts_for, transfer_ca=CA, run_id="run-1",
                             final_attempt=False)  # fmt: skip
        finally:
            target.restart_sshd()
        assert first.retryable and first.outcome.status == "rolled_back"
        assert first.outcome.error.startswith("ConnectFailed")
        assert plan_status(site.db, MOVE) == "running"
        site.assert_serving("host-a")

        second = run_move(site.db, MOVE, hosts_for, transfer_ca=CA, run_id="run-1", retry=True)
    assert second.succeeded and (second.outcome.attempt, second.plan_status) == (2, "done")
    assert plan_status(site.db, MOVE) == "done"
    site.assert_serving("host-b")
    entries = [e for e in Ledger.open(paths.ledger_dir()).entries() if e.payload.get("move_id")]
    outcomes = [e.type for e in entries if e.type != EntryType.MIGRATION_STEP]
    assert outcomes == [EntryType.MIGRATION_COMPLETED]  # the first attempt was not final
    assert "rolled_back" in [e.payload.get("phase") for e in entries]


def test_a_move_that_is_not_approved_is_refused_before_anything_runs(site) -> None:
    add_move(site.db, MOVE, site.shard, status="proposed")
    with pytest.raises(PlanError, match="approve it first"):
        run_move(site.db, MOVE, lambda move: {}, transfer_ca=CA, run_id="run-1")
    with pytest.raises(PlanError, match="malformed"):
        run_move(site.db, "mv-../x", lambda move: {}, transfer_ca=CA, run_id="run-1")
    with pytest.raises(PlanError, match="no move with id"):
        run_move(site.db, "mv-00000000000000ff", lambda move: {}, transfer_ca=CA, run_id="run-1")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        ("ConnectFailed: host-b (root@127.0.0.1:22): unreachable after 4 attempts", True),
        ("OSError: Socket is closed; target: not cleaned: EOFError: ", True),
        ("SSHException: Error reading SSH protocol banner", True),
        ("RemoteCommandFailed: host-b: restore exited -1: ", True),
        ("RemoteCommandFailed: host-b: restore exited 3: chunk corrupt", False),
        ("HostKeyRejected: host-b: host key mismatch", False),
        ("AuthenticationFailed: host-b: authentication refused", False),
        ("AccessDenied: operator 'broker' may not receive_migration", False),
        ("MigrationError: target host-b: 10 bytes free", False),
        ("IOException: IO Error: Could not set lock on file", True),
        (ConnectionResetError("reset by peer"), True),
        (PermissionError("denied"), False),
    ],
)
def test_which_failures_are_transient(error, transient) -> None:
    assert is_transient(error) is transient


def test_progress_lines_follow_phases_and_rounds() -> None:
    lines: list[str] = []
    log = ProgressLog(lines.append, interval=3600)
    for phase, round_, sent in [("precopy", 1, 0), ("precopy", 1, 5 << 20), ("precopy", 2, 6 << 20),
                                ("final_copy", 0, 7 << 20)]:  # fmt: skip
        log(MigrationProgress("mv-00000000000000c1", phase, round_, sent, 2 << 20))
    assert lines == [
        "move mv-00000000000000c1: precopy round 1, 0.0 MiB sent, 2.0 MiB/s",
        "move mv-00000000000000c1: precopy round 2, 6.0 MiB sent, 2.0 MiB/s",
        "move mv-00000000000000c1: final_copy, 7.0 MiB sent, 2.0 MiB/s",
    ]
