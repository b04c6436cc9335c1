"""Run one approved move of `plan.migration_plan` end to end: mark it running, migrate it with
every step and the outcome in the trust ledger, then settle its plan status."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyshard.broker.from_config import broker_policy, host_accesses, transfer_ca
from skyshard.broker.lease import MoveLease
from skyshard.broker.migration import (
    COMMITTED,
    TERMINAL,
    HostAccess,
    MigrationOutcome,
    MigrationProgress,
    MigrationSettings,
    Migrator,
    MoveRequest,
)
from skyshard.broker.ops_tables import MigrationRow, OpsStore, Route, Step
from skyshard.broker.routing import dependent_hosts, push_routing, routing_document
from skyshard.config.sky import Sky
from skyshard.ledger import Ledger
from skyshard.plans.status import MoveStatus, PlanError
from skyshard.plans.statuses import PlanStatuses
from skyshard.transport.access import AccessPolicy
from skyshard.transport.certificates import TransferCA
from skyshard.transport.ssh import ConnectionPool
from skyshard.trust.events import (
    EntryType,
    migration_payload,
    record_access_denied,
    record_migration,
)

DECIDER = "broker"
"""Who the plan's decision log names for the statuses a migration run sets."""
TRANSIENT_ERRORS = frozenset(
    {
        "ConnectFailed",
        "SSHException",
        "ChannelException",
        "NoValidConnectionsError",
        "EOFError",
        "OSError",
        "TimeoutError",
        "timeout",
        "ConnectionError",
        "ConnectionResetError",
        "ConnectionAbortedError",
        "ConnectionRefusedError",
        "BrokenPipeError",
    }
)
"""Exception type names of network failures that a later attempt may not meet."""


@dataclass(frozen=True)
class PlannedMove:
    """A row of `plan.migration_plan`, as far as running it needs."""

    move_id: str
    shard_id: str
    from_host: str
    to_host: str
    from_provider: str
    to_provider: str
    status: str

    def request(self) -> MoveRequest:
        return MoveRequest(self.move_id, self.shard_id, self.from_host, self.to_host)

    def payload(self, bytes_sent: int = 0, **detail: object) -> dict:
        return migration_payload(
            self.move_id,
            self.shard_id,
            self.from_provider,
            self.to_provider,
            bytes_sent,
            **detail,
        )


@dataclass(frozen=True)
class MoveResult:
    """What one run of a move did. `retryable`: it failed for a transient network reason and
    the plan row stays `running` for another attempt (with `retry=True`)."""

    move: PlannedMove
    outcome: MigrationOutcome
    plan_status: str
    retryable: bool = False

    @property
    def succeeded(self) -> bool:
        return self.outcome.status == "done"


def is_transient(error: str | BaseException) -> bool:
    """Whether a failure (an exception, or an outcome's `"Type: message"` error) looks like a
    network blip worth another attempt; refusals (host key, auth, policy, validation) never do."""
    if isinstance(error, BaseException):
        name, message = type(error).__name__, str(error)
    else:
        name, _, message = error.partition(":")
    if name in TRANSIENT_ERRORS:
        return True
    if name == "RemoteCommandFailed":  # the connection died under a running command
        return "timed out after" in message or "exited -1" in message
    return name == "IOException" and "lock" in message  # another process writes DuckDB


def load_move(db_path: Path | str, move_id: str) -> PlannedMove:
    row = PlanStatuses(db_path).move(move_id)
    return PlannedMove(
        row["move_id"],
        row["shard_id"],
        row["from_host_id"],
        row["to_host_id"],
        row["from_provider_id"],
        row["to_provider_id"],
        row["status"],
    )


def run_move(
    db_path: Path | str,
    move_id: str,
    hosts_for: Callable[[PlannedMove], Mapping[str, HostAccess]],
    *,
    transfer_ca: TransferCA,
    run_id: str,
    retry: bool = False,
    final_attempt: bool = True,
    settings: MigrationSettings | None = None,
    ledger: Ledger | None = None,
    on_progress: Callable[[MigrationProgress], None] | None = None,
    on_step: Callable[[Step], None] | None = None,
    **migrator_options: Any,
) -> MoveResult:
    """Run the approved move `move_id`, resume it (plan `running`, or `failed` with an
    unfinished ops row), or report the outcome it already has (noop).

    `hosts_for(move)` builds the access to the move's hosts; a failure there (e.g. a host
    without a pinned key) fails the move before any remote action. `retry` passes on to the
    Migrator (a rolled-back move is attempted again); unless `final_attempt`, a transient
    failure leaves the plan `running` and returns `retryable=True`. `on_step` sees every
    persisted step once the ledger has it. Migration errors come back in the result; only a
    malformed, unknown or unapproved move id raises (PlanError), and a move another run holds
    (MoveLeaseHeld, naming that run; nothing is changed). `migrator_options` go to the
    Migrator (e.g. `after_step`, `dependents`).
    """
    move = load_move(db_path, move_id)
    ops = OpsStore(db_path)
    if move.status in (MoveStatus.PROPOSED, MoveStatus.REJECTED):
        raise PlanError(
            f"move {move_id} is {move.status!r} in plan.migration_plan: approve it first"
        )
    lease_settings = (settings or MigrationSettings()).lease
    # One broker per move: taken before the plan row or any host is touched.
    with MoveLease(ops, move_id, run_id, lease_settings) as lease:
        move = load_move(db_path, move_id)  # as it is now that this run holds the move
        row = ops.migration(move_id)
        resumable = row is not None and row.status not in TERMINAL
        if move.status in (MoveStatus.DONE, MoveStatus.ROLLED_BACK) or (
            move.status == MoveStatus.FAILED and not resumable
        ):
            outcome = _recorded(move, row)
            return MoveResult(move, dataclasses.replace(outcome, noop=True), move.status)
        if move.status == MoveStatus.APPROVED:
            _set_status(db_path, move, MoveStatus.RUNNING, f"run {run_id}")
            move = dataclasses.replace(move, status=MoveStatus.RUNNING.value)
        ledger = ledger or Ledger.open()
        try:
            hosts = hosts_for(move)
        except Exception as error:
            failed = _failed_outcome(move, row, _describe(error))
            return _settle(db_path, move, failed, ledger, run_id, retryable=False)

        def on_event(step: Step) -> None:
            detail = {"phase": step.phase, "seq": step.seq, "detail": step.detail}
            record_migration(
                EntryType.MIGRATION_STEP,
                run_id,
                move.payload(step.detail.get("bytes_sent", 0), **detail),
                ledger=ledger,
            )
            if on_step is not None:
                on_step(step)

        migrator = Migrator(str(db_path), hosts, settings, transfer_ca=transfer_ca,
                            on_event=on_event, on_progress=on_progress, lease=lease,
                            **migrator_options)  # fmt: skip
        try:
            outcome = migrator.migrate(move.request(), retry=retry)
        except Exception as error:
            outcome = _failed_outcome(move, ops.migration(move_id), _describe(error))
            transient = is_transient(error)
        else:
            transient = outcome.error is not None and is_transient(outcome.error)
        retryable = outcome.status != "done" and transient and not final_attempt
        return _settle(db_path, move, outcome, ledger, run_id, retryable)


def move_hosts(sky: Sky, routes: Iterable[Route], move: PlannedMove) -> list[str]:
    """The move's two hosts and every host running a shard that depends on the moved one
    (it gets the new routing document); dependents on hosts without a pinned key are left out
    (the broker never connects there)."""
    dependents = dependent_hosts(sky.shards, routes, move.shard_id)
    pinned = sorted(h for h in dependents if h in sky.hosts and sky.hosts[h][1].host_key)
    return list(dict.fromkeys([move.from_host, move.to_host, *pinned]))


def recording_policy(sky: Sky, run_id: str, ledger: Ledger) -> AccessPolicy:
    """The broker's access policy; each refusal is appended to the ledger with `run_id`."""
    return broker_policy(
        sky, lambda denial: record_access_denied(denial, run_id=run_id, ledger=ledger)
    )


@contextlib.contextmanager
def configured_access(
    db_path: Path | str, sky: Sky, run_id: str, ledger: Ledger
) -> Iterator[Callable[[PlannedMove], dict[str, HostAccess]]]:
    """`hosts_for(move)` from the configured sky (pinned keys, the broker's key and grants);
    every refusal of the policy is appended to the ledger with `run_id`."""
    policy = recording_policy(sky, run_id, ledger)
    ops = OpsStore(db_path)
    with ConnectionPool() as pool:

        def hosts_for(move: PlannedMove) -> dict[str, HostAccess]:
            return host_accesses(sky, move_hosts(sky, ops.routes(), move), pool, policy)

        yield hosts_for


def push_missed_routing(
    db_path: Path | str, sky: Sky, *, run_id: str, ledger: Ledger | None = None
) -> dict[str, str | None]:
    """Push the current routing document to every host in `ops.routing_backlog` (hosts that
    missed a move's pushes); a delivered host leaves the backlog, a missed one stays with one
    more attempt. Returns host id -> None (delivered) or the error."""
    ops = OpsStore(db_path)
    backlog = ops.routing_backlog()
    if not backlog:
        return {}
    policy = recording_policy(sky, run_id, ledger or Ledger.open())
    document = routing_document(ops.routes())
    results: dict[str, str | None] = {}
    with ConnectionPool() as pool:
        for missed in backlog:
            try:
                access = host_accesses(sky, [missed.host_id], pool, policy)[missed.host_id]
                push_routing(access.session, access.root, document)
            except Exception as error:  # one unreachable host must not keep the others waiting
                results[missed.host_id] = _describe(error)
                ops.routing_missed(missed.host_id, missed.move_id, 1, _describe(error))
            else:
                results[missed.host_id] = None
                ops.routing_delivered([missed.host_id])
    return results


def run_configured_move(
    db_path: Path | str,
    move_id: str,
    sky: Sky,
    *,
    run_id: str,
    ledger: Ledger | None = None,
    **options: Any,
) -> MoveResult:
    """`run_move` with host access built from the configured sky."""
    ledger = ledger or Ledger.open()
    with configured_access(db_path, sky, run_id, ledger) as hosts_for:
        return run_move(db_path, move_id, hosts_for, transfer_ca=transfer_ca(sky),
                        run_id=run_id, ledger=ledger, **options)  # fmt: skip


def abort_move(db_path: Path | str, move_id: str, sky: Sky, *, by: str, run_id: str) -> MoveResult:
    """Stop a move for good: an approved move that has not started is rejected; one in
    progress before the commit point is rolled back (under its lease, so never while another
    broker runs it). A move past the commit point cannot be aborted: resume it."""
    move = load_move(db_path, move_id)
    ops = OpsStore(db_path)
    ledger = Ledger.open()
    with MoveLease(ops, move_id, run_id) as lease:
        row = ops.migration(move_id)
        if move.status == MoveStatus.APPROVED and row is None:
            _set_status(db_path, move, MoveStatus.REJECTED, f"aborted by {by} before it started")
            return MoveResult(move, _recorded(move, None), MoveStatus.REJECTED.value)
        with configured_access(db_path, sky, run_id, ledger) as hosts_for:
            migrator = Migrator(
                str(db_path), hosts_for(move), transfer_ca=transfer_ca(sky), lease=lease
            )
            outcome = migrator.abort(move.request(), by)
        if move.status == MoveStatus.APPROVED:
            _set_status(db_path, move, MoveStatus.RUNNING, f"aborted by {by}")
            move = dataclasses.replace(move, status=MoveStatus.RUNNING.value)
        return _settle(db_path, move, outcome, ledger, run_id, retryable=False)


def _settle(
    db_path: Path | str,
    move: PlannedMove,
    outcome: MigrationOutcome,
    ledger: Ledger,
    run_id: str,
    retryable: bool,
) -> MoveResult:
    """Bring the plan row in line with the outcome and record the outcome in the ledger.

    A move past the commit point that did not finish stays `running` (the shard already runs
    on the target; a re-run finishes it); so does one that will be retried.
    """
    if retryable or (outcome.status != "done" and outcome.phase in COMMITTED):
        return MoveResult(move, outcome, move.status, retryable)
    target = {"done": MoveStatus.DONE, "rolled_back": MoveStatus.ROLLED_BACK}.get(
        outcome.status, MoveStatus.FAILED
    )
    if move.status == MoveStatus.RUNNING and target == MoveStatus.ROLLED_BACK:
        _set_status(db_path, move, MoveStatus.FAILED, outcome.error)
    if move.status != target:
        _set_status(db_path, move, target, outcome.error)
    detail = {
        "attempt": outcome.attempt,
        "rounds": outcome.rounds,
        "downtime_ms": outcome.downtime_ms,
        "error": outcome.error,
    }
    if target == MoveStatus.DONE and not outcome.noop:
        entry_type = EntryType.MIGRATION_COMPLETED
    elif target == MoveStatus.ROLLED_BACK:
        entry_type = EntryType.MIGRATION_ROLLED_BACK
    else:
        entry_type = None
    if entry_type is not None:
        record_migration(
            entry_type, run_id, move.payload(outcome.bytes_sent, **detail), ledger=ledger
        )
    return MoveResult(move, outcome, target.value)


def _set_status(
    db_path: Path | str, move: PlannedMove, status: MoveStatus, note: str | None
) -> None:
    note = note[:500] if note else note
    PlanStatuses(db_path).decide(move.move_id, status, DECIDER, note)


def _recorded(move: PlannedMove, row: MigrationRow | None) -> MigrationOutcome:
    if row is not None:
        return MigrationOutcome.of(row)
    return MigrationOutcome(move.move_id, move.status, "accepted", 0, 0, 0, None, None)


def _failed_outcome(move: PlannedMove, row: MigrationRow | None, error: str) -> MigrationOutcome:
    """The outcome of a run that ended with an exception: the ops row (if any) and the error."""
    if row is None:
        return MigrationOutcome(move.move_id, "failed", "accepted", 0, 0, 0, None, error)
    return dataclasses.replace(MigrationOutcome.of(row), error=error)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class ProgressLog:
    """A progress callback that reports through `emit` at most every `interval` seconds, and
    whenever the phase or round changes."""

    def __init__(self, emit: Callable[[str], None], interval: float = 5.0) -> None:
        self.emit = emit
        self.interval = interval
        self._last: tuple[str, int] | None = None
        self._at = 0.0

    def __call__(self, progress: MigrationProgress) -> None:
        now = time.monotonic()
        stage = (progress.phase, progress.round)
        if stage == self._last and now - self._at < self.interval:
            return
        self._last, self._at = stage, now
        self.emit(describe_progress(progress))


def describe_progress(progress: MigrationProgress) -> str:
    where = f"{progress.phase} round {progress.round}" if progress.round else progress.phase
    return (
        f"move {progress.move_id}: {where}, {progress.bytes_sent / 2**20:.1f} MiB sent, "
        f"{progress.rate / 2**20:.1f} MiB/s"
    )


def describe_step(step: Step) -> str:
    """One log line per protocol step: its phase and the numbers that matter to an operator."""
    shown = ("round", "bytes_sent", "chunks_sent", "state_bytes", "downtime_ms", "host", "error")
    detail = ", ".join(f"{k}={step.detail[k]}" for k in shown if step.detail.get(k) is not None)
    return f"move {step.move_id}: step {step.seq} {step.phase}" + (f" ({detail})" if detail else "")
