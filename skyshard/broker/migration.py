"""The migration protocol: pre-copy, freeze, final delta, cutover, rollback, crash recovery.

Phases, in order (all recorded in `ops.migration_steps`):
  accepted → precopy (one step per round) → frozen → final_copy → cutover → restored
  → source_stopped → target_started → healthy → switched → source_cleaned → routing_pushed
  → done

While the shard is frozen nothing waits for DuckDB: `frozen` and `final_copy` are written with
`cutover` (one transaction, while the source is killed and the target restores), and
`restored`, `source_stopped`, `target_started` with `healthy` (one transaction, once the
target answers). `cutover` is persisted before the target is told to start: from it on a
rollback treats the target copy as possibly running. `switched` is the commit point: the
routing compare-and-set and the phase are written in one transaction. Before it, any failure
(or a re-run after a broker crash) rolls back: the target copy is stopped and deleted, then the
source is thawed or restarted. From it on, a re-run rolls forward. Fencing (one copy, never
two): the source is killed (it is frozen, so it serves nothing more) before the target starts,
and the source is only restarted by a rollback after the target copy is confirmed gone; see
docs/migrations.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from skyshard.broker.lease import LeaseSettings, MoveLease
from skyshard.broker.ops_tables import (
    MigrationRow,
    OpsStore,
    PendingStep,
    Route,
    RoutingConflict,
    Step,
)
from skyshard.broker.precopy import PrecopyRule
from skyshard.broker.routing import push_routing, routing_document
from skyshard.runtime import host_helper
from skyshard.runtime.client import ShardRuntime, ShardStatus
from skyshard.runtime.transfer import (
    Progress,
    SendMode,
    SendReport,
    send_between_hosts,
)
from skyshard.transport import validate
from skyshard.transport.access import AccessDenied
from skyshard.transport.certificates import TransferCA
from skyshard.transport.manifest import Manifest
from skyshard.transport.ssh import SshSession
from skyshard.transport.validate import ValidationError

log = logging.getLogger(__name__)

PHASES = (
    "accepted",
    "precopy",
    "frozen",
    "final_copy",
    "cutover",
    "restored",
    "source_stopped",
    "target_started",
    "healthy",
    "switched",
    "source_cleaned",
    "routing_pushed",
    "done",
)
COMMITTED = frozenset(PHASES[PHASES.index("switched") :])
# Written in one transaction with the phase after them, so a crash never leaves a move there.
LATE_PHASES = frozenset({"frozen", "final_copy", "restored", "source_stopped", "target_started"})
# From this phase on the target copy may run (its start order may have been given).
TARGET_MAY_RUN = PHASES.index("cutover")
TERMINAL = frozenset({"done", "rolled_back", "failed", "rejected"})
# Less free space than this after a failed transfer means the disk filled up.
DISK_FULL_BYTES = 4 << 20
# What a pre-copy round may send beyond the source's state size at the start of the move
# (plus a quarter of it): room for a shard that keeps writing.
STREAM_SLACK_BYTES = 64 << 20
SOURCE_ACTIONS = ("read_telemetry", "send_migration", "freeze_shard", "stop_shard", "start_shard")
TARGET_ACTIONS = ("read_telemetry", "receive_migration", "start_shard", "stop_shard")


class MigrationError(RuntimeError):
    """A move that cannot start (bad request, stale routing) or whose rollback is incomplete."""


class TargetDiskFull(MigrationError):
    """The target ran out of disk space while receiving (not a corrupted chunk)."""


def default_owner() -> str:
    """A lease owner for a broker outside Dagster: host, process and a random part."""
    return f"broker-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class MoveRequest:
    """Move `shard_id` from `from_host` to `to_host` (served on `to_port`, default: same)."""

    move_id: str
    shard_id: str
    from_host: str
    to_host: str
    to_port: int | None = None

    def __post_init__(self) -> None:
        validate.node_id(self.move_id, "move_id")
        validate.shard_id(self.shard_id)
        validate.node_id(self.from_host, "from_host")
        validate.node_id(self.to_host, "to_host")
        if self.from_host == self.to_host:
            raise ValidationError("to_host", self.to_host, "is the shard's source host")
        if self.to_port is not None and not (
            isinstance(self.to_port, int) and 0 < self.to_port < 65536
        ):
            raise ValidationError("to_port", self.to_port, "must be an integer in 1..65535")


@dataclass(frozen=True)
class HostAccess:
    """How the broker reaches a host and where shards on it are served."""

    host_id: str
    session: SshSession
    root: str
    service_address: str
    bind: str = "127.0.0.1"

    def runtime(self) -> ShardRuntime:
        return ShardRuntime(self.session, self.root)


@dataclass(frozen=True)
class MigrationSettings:
    precopy: PrecopyRule = field(default_factory=PrecopyRule)
    health_timeout: float = 15.0
    # Rehash files the target kept from an earlier round too (default: trust their identity).
    full_verify: bool = False
    # Seconds without transfer progress before the connection is declared dead.
    stall_timeout: float = 30.0
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    routing_push_attempts: int = 3
    routing_push_pause: float = 1.0
    # Send the first pre-copy round whole (raw files, no chunking) when the target's chunk
    # store holds less than this share of the state's size; 0 turns the fast path off.
    whole_first_copy_below: float = 0.5


@dataclass(frozen=True)
class MigrationProgress:
    move_id: str
    phase: str
    round: int
    bytes_sent: int
    rate: float


@dataclass(frozen=True)
class MigrationOutcome:
    move_id: str
    status: str
    phase: str
    attempt: int
    bytes_sent: int
    rounds: int
    downtime_ms: float | None
    error: str | None
    noop: bool = False

    @classmethod
    def of(cls, row: MigrationRow, noop: bool = False) -> MigrationOutcome:
        return cls(
            row.move_id,
            row.status,
            row.phase,
            row.attempt,
            row.bytes_sent,
            row.rounds,
            row.downtime_ms,
            row.error,
            noop,
        )


@dataclass
class _Move:
    """One attempt's fixed parts, and the steps that happened but are not persisted yet."""

    request: MoveRequest
    route: Route
    port: int
    source: HostAccess
    target: HostAccess
    source_rt: ShardRuntime
    target_rt: ShardRuntime
    state_bytes: int = 0
    # Round 1 went whole: the source's chunk store lacks this state until it is indexed.
    whole: bool = False
    late: list[PendingStep] = field(default_factory=list)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class Migrator:
    """Runs moves between the hosts it knows, persisting every step in `ops`.

    Snapshot chunks go from the source host to the target host directly, under certificates
    `transfer_ca` signs for each move (every target's sshd must trust it).

    `on_event(step)` sees every persisted step (the trust ledger appends them); `on_progress`
    sees transfer progress; `after_step(phase)` runs after each step is persisted (tests
    inject broker crashes there). `dependents(shard_id)` names the hosts that get the new
    routing file (default: every known host). `owner` names this broker in the move's lease
    (a Dagster run id; default: host, pid and a random part); `lease` is one already held by
    the caller for the move.
    """

    def __init__(
        self,
        db_path: str,
        hosts: Mapping[str, HostAccess],
        settings: MigrationSettings | None = None,
        *,
        transfer_ca: TransferCA,
        on_event: Callable[[Step], None] | None = None,
        on_progress: Callable[[MigrationProgress], None] | None = None,
        after_step: Callable[[str], None] | None = None,
        dependents: Callable[[str], Iterable[str]] | None = None,
        owner: str | None = None,
        lease: MoveLease | None = None,
    ) -> None:
        self.ops = OpsStore(db_path)
        self.owner = lease.owner if lease is not None else owner or default_owner()
        self.lease = lease
        self.hosts = dict(hosts)
        self.settings = settings or MigrationSettings()
        self.transfer_ca = transfer_ca
        self.on_event = on_event
        self.on_progress = on_progress
        self.after_step = after_step
        self.dependents = dependents or (lambda _shard: list(self.hosts))

    # --- entry point ---------------------------------------------------------------------

    def migrate(self, request: MoveRequest, *, retry: bool = False) -> MigrationOutcome:
        """Run the move, resume it after a crash, or report the outcome it already has.

        A move already in a terminal state is a no-op; with `retry`, a rolled-back move is
        attempted again (used by the job's retry policy for transient network errors). The
        move's lease is taken first (MoveLeaseHeld if another broker's is live).
        """
        for host in (request.from_host, request.to_host):
            if host not in self.hosts:
                raise ValidationError("host", host, f"unknown; known: {sorted(self.hosts)}")
        with self._leased(request.move_id):
            return self._migrate_leased(request, retry)

    def abort(self, request: MoveRequest, by: str) -> MigrationOutcome:
        """Roll back a move that has not reached the commit point (`switched`), under its
        lease; a committed move can only be finished (`migrate` rolls it forward)."""
        with self._leased(request.move_id):
            row = self.ops.migration(request.move_id)
            if row is None or row.status in TERMINAL:
                raise MigrationError(f"move {request.move_id} is not in progress; nothing to abort")
            _check_same_move(row, request)
            if row.phase in COMMITTED:
                raise MigrationError(
                    f"move {request.move_id} passed the commit point ({row.phase}): the shard "
                    "runs on the target; resume it to finish instead"
                )
            self._event(row.move_id, "aborted", {"by": by, "phase": row.phase})
            self._rollback(request, row.phase, _original_error(row, f"aborted by {by}"))
            return MigrationOutcome.of(self._row(request.move_id))

    @contextlib.contextmanager
    def _leased(self, move_id: str) -> Iterator[MoveLease]:
        if self.lease is not None and self.lease.move_id == move_id:
            yield self.lease
            return
        with MoveLease(self.ops, move_id, self.owner, self.settings.lease) as lease:
            self.lease = lease
            try:
                yield lease
            finally:
                self.lease = None

    def _migrate_leased(self, request: MoveRequest, retry: bool) -> MigrationOutcome:
        row = self.ops.migration(request.move_id)
        stale = self.lease.taken_over if self.lease is not None else None
        if row is not None and stale is not None:
            expired = stale.expires_at.isoformat()
            detail = {"from": stale.owner, "expired_at": expired, "by": self.owner}
            self._event(request.move_id, "lease_taken_over", detail)
        if row is None:
            self.ops.create_migration(
                request.move_id, request.shard_id, request.from_host, request.to_host
            )
            self._step(request.move_id, "accepted", {"to_port": request.to_port})
        else:
            _check_same_move(row, request)
            if row.status in TERMINAL and not (retry and row.status == "rolled_back"):
                return MigrationOutcome.of(row, noop=True)
            if row.status not in TERMINAL:
                resumed = self._recover(request, row)
                if resumed is not None:
                    return resumed
        return self._attempt(request)

    # --- recovery ------------------------------------------------------------------------

    def _recover(self, request: MoveRequest, row: MigrationRow) -> MigrationOutcome | None:
        """Finish an interrupted move: roll forward after the commit point, else roll back.
        Returns the outcome, or None when a fresh attempt should follow."""
        log.warning(
            "move %s: resuming from phase %s (status %s)", row.move_id, row.phase, row.status
        )
        direction = "forward" if row.phase in COMMITTED else "back"
        detail = {"phase": row.phase, "status": row.status, "direction": direction}
        self._event(row.move_id, "resumed", {**detail, "by": self.owner})
        if row.phase in COMMITTED:
            return self._roll_forward(request)
        interrupted_rollback = row.status == "rolling_back"
        self._rollback(request, row.phase, _original_error(row, "broker stopped during the move"))
        if interrupted_rollback:
            return MigrationOutcome.of(self._row(row.move_id))
        return None

    def _row(self, move_id: str) -> MigrationRow:
        row = self.ops.migration(move_id)
        assert row is not None
        return row

    # --- one attempt ---------------------------------------------------------------------

    def _attempt(self, request: MoveRequest) -> MigrationOutcome:
        row = self._row(request.move_id)
        self.ops.update_migration(
            request.move_id, attempt=row.attempt + 1, status="running", error=None, downtime_ms=None
        )
        route = self.ops.route(request.shard_id)
        problem = _precondition(request, route)
        if problem:
            self.ops.update_migration(request.move_id, status="rejected", error=problem)
            self._event(request.move_id, "rejected", {"error": problem})
            return MigrationOutcome.of(self._row(request.move_id))
        assert route is not None
        try:
            self._authorize(request)
        except AccessDenied as error:  # refused before any connection: nothing to undo
            self.ops.update_migration(request.move_id, status="rejected", error=_describe(error))
            self._event(request.move_id, "rejected", {"error": _describe(error)})
            return MigrationOutcome.of(self._row(request.move_id))
        try:
            self._run(request, route)
        except Exception as error:
            log.warning("move %s failed: %s", request.move_id, _describe(error))
            row = self._row(request.move_id)
            if row.phase in COMMITTED:
                self.ops.update_migration(request.move_id, error=_describe(error))
                raise
            self._rollback(request, row.phase, _describe(error))
        return MigrationOutcome.of(self._row(request.move_id))

    def _authorize(self, request: MoveRequest) -> None:
        """Every grant the whole move may need (its rollback included), checked before the
        first connection, so a refusal never leaves a half-done move behind."""
        needs = [
            *((request.from_host, action) for action in SOURCE_ACTIONS),
            *((request.to_host, action) for action in TARGET_ACTIONS),
            *((h, "push_routing") for h in self.dependents(request.shard_id) if h in self.hosts),
        ]
        for host_id, action in needs:
            self.hosts[host_id].session.authorize(action)

    def _run(self, request: MoveRequest, route: Route) -> None:
        source, target = self.hosts[request.from_host], self.hosts[request.to_host]
        move = _Move(request, route, request.to_port or route.port, source, target,
                     source.runtime(), target.runtime())  # fmt: skip
        # Installed now so that the cutover does not check scripts; meanwhile the source's status.
        with ThreadPoolExecutor(max_workers=1) as background:
            installed = background.submit(move.target_rt.install)
            status = move.source_rt.status(request.shard_id)
            installed.result()
        if not status.running:
            raise MigrationError(f"shard {request.shard_id} is not running on {source.host_id}")
        move.state_bytes = status.state_bytes
        try:
            self._migrate(move)
        except Exception:
            self._persist_on_failure(move)
            raise

    def _migrate(self, move: _Move) -> None:
        request, shard = move.request, move.request.shard_id
        sent, on_target = self._precopy(move)
        frozen_at = time.monotonic()
        move.late.append(PendingStep("frozen", {}))
        manifest = move.source_rt.freeze_and_snapshot(shard, request.move_id)
        if not sent:
            _check_room(move.target, move.target_rt.status(shard), shard, manifest.total_size)
        report = self._send_final(move, manifest, on_target, sent)
        sent += report.bytes_sent
        move.late.append(PendingStep("final_copy", _report_detail(report, manifest)))
        self._cutover(move, manifest, sent, frozen_at)
        new_route, step = self.ops.switch_route(
            request.move_id,
            move.route,
            move.target.host_id,
            move.target.service_address,
            move.port,
            {"generation": move.route.generation + 1, "host": move.target.host_id,
             "port": move.port},
            self.owner,
        )  # fmt: skip
        self._announce(step)
        self._finish(request, new_route, index_source=move.whole, source_rt=move.source_rt)

    def _cutover(self, move: _Move, manifest: Manifest, sent: int, frozen_at: float) -> None:
        """Kill the frozen source while the target restores and `cutover` is persisted; then
        give the target its start order. Its start and health check run in the same helper
        run, so the target's whole part costs one remote command."""
        move_id, shard = move.request.move_id, move.request.shard_id
        generation = move.route.generation + 1
        handover = move.target_rt.handover(
            manifest,
            move.port,
            generation=generation,
            bind=move.target.bind,
            health_timeout=self.settings.health_timeout,
            full_verify=self.settings.full_verify,
        )
        # Leaving this block waits for the kill, then for a helper that got no start order.
        with handover, ThreadPoolExecutor(max_workers=1) as background:
            killed = background.submit(move.source_rt.stop, shard, kill=True)
            detail = {"generation": generation, "host": move.target.host_id, "port": move.port}
            move.late.append(PendingStep("cutover", detail))
            self._persist(move_id, move.late, bytes_sent=sent)
            summary = handover.restored()
            if (summary["files"], summary["bytes"]) != (len(manifest.files), manifest.total_size):
                expected = f"{len(manifest.files)} files, {manifest.total_size} bytes"
                raise MigrationError(
                    f"restore on {move.target.host_id}: {summary}, expected {expected}"
                )
            move.late.append(PendingStep("restored", {**summary, "manifest": manifest.digest}))
            killed.result()
            move.late.append(PendingStep("source_stopped", {"host": move.source.host_id}))
            if self.lease is not None and self.lease.lost.is_set():
                raise MigrationError(f"move {move_id}: lease lost; not starting the target")
            status = handover.start()
            detail = {"pid": status.pid, "isolation": status.isolation}
            move.late.append(PendingStep("target_started", detail))
            answer = handover.healthy()
        downtime_ms = (time.monotonic() - frozen_at) * 1000
        detail = {"keys": answer.get("keys"), "downtime_ms": downtime_ms}
        move.late.append(PendingStep("healthy", detail))
        self._persist(move_id, move.late, downtime_ms=downtime_ms)

    def _precopy(self, move: _Move) -> tuple[int, set[str]]:
        """Copy rounds while the shard runs; each round is restored on the target so that the
        final round only rewrites what changed. Returns the bytes sent and the chunks the
        target's store holds (every chunk of a restored round)."""
        request, rule = move.request, self.settings.precopy
        content: list[int] = []
        on_target: set[str] = set()
        sent = 0
        while rule.max_rounds:
            whole = False
            if not content:
                with ThreadPoolExecutor(max_workers=1) as background:
                    first_copy = background.submit(self._first_copy, move)
                    status = move.target_rt.status(request.shard_id)
                    whole = first_copy.result()
                _check_room(move.target, status, request.shard_id, move.state_bytes)
            if whole:
                report = self._send(move, SendMode.WHOLE, 1, sent)
                move.whole = True
                detail = {**_report_detail(report), "whole": True}
            else:
                report = self._send(move, SendMode.STREAM, len(content) + 1, sent)
                assert report.manifest is not None
                move.target_rt.restore(report.manifest)
                on_target.update(report.manifest.chunk_sizes())
                detail = _report_detail(report, report.manifest)
            sent += report.bytes_sent
            content.append(report.content_bytes_sent)
            reason = rule.stop_reason(content) or _nothing_to_resend(report)
            detail = {"round": len(content), **detail, "stop": reason}
            self._step(request.move_id, "precopy", detail, bytes_sent=sent, rounds=len(content))
            if reason:
                break
        return sent, on_target

    def _first_copy(self, move: _Move) -> bool:
        """Whether the target's chunk store holds little of the state (a first move there):
        then chunking would cost more than it saves."""
        share = self.settings.whole_first_copy_below
        if share <= 0:
            return False
        # The helper's average content-defined chunk turns a chunk count into bytes.
        chunk_bytes = host_helper.DEFAULT_CHUNKS.avg_size
        held = len(move.target_rt.inventory(move.request.shard_id)) * chunk_bytes
        return held < share * move.state_bytes

    def _round_budget(self, move: _Move) -> int:
        return move.state_bytes + move.state_bytes // 4 + STREAM_SLACK_BYTES

    def _send_final(
        self,
        move: _Move,
        manifest: Manifest,
        on_target: set[str],
        sent_before: int,
    ) -> SendReport:
        """The frozen round's delta. When every chunk was in a round restored on the target
        there is nothing to ask for (no remote call); the restore still verifies each chunk
        it reads, so a chunk lost since then fails the move (rolled back) rather than the data.
        """
        chunk_count = len(manifest.chunk_sizes())
        if on_target.issuperset(manifest.chunk_sizes()):
            return SendReport(chunk_count, 0, 0, 0, 0.0)
        return self._send(move, SendMode.DELTA, 0, sent_before, manifest)

    def _send(
        self,
        move: _Move,
        mode: SendMode,
        round_number: int,
        sent_before: int,
        manifest: Manifest | None = None,
    ) -> SendReport:
        """One transfer source → target, watched (see `_watched`): a pre-copy round sent whole
        or streamed (the target takes at most the source's state size plus room for growth in
        bytes), or the frozen round's delta (round 0)."""

        def send(progress: Callable[[Progress], None]) -> SendReport:
            return send_between_hosts(
                move.source_rt, move.target_rt, move.request.shard_id, mode,
                move_id=move.request.move_id, ca=self.transfer_ca, manifest=manifest,
                budget=self._round_budget(move), on_progress=progress,
                stall_timeout=self.settings.stall_timeout,
            )  # fmt: skip

        phase = "final_copy" if mode is SendMode.DELTA else "precopy"
        return self._watched(move, phase, round_number, sent_before, send)

    def _watched(
        self,
        move: _Move,
        phase: str,
        round_number: int,
        sent_before: int,
        transfer: Callable[[Callable[[Progress], None]], SendReport],
    ) -> SendReport:
        """Run `transfer` with progress reports, closing the source connection when they stop
        for `stall_timeout`; a failure on a full target disk is reported as such."""
        request = move.request
        last = [time.monotonic()]

        def progress(p: Progress) -> None:
            last[0] = time.monotonic()
            if self.on_progress is not None:
                self.on_progress(
                    MigrationProgress(
                        request.move_id, phase, round_number, sent_before + p.bytes_sent, p.rate
                    )
                )

        done = threading.Event()
        timeout = self.settings.stall_timeout
        watchdog = threading.Thread(
            target=_watch_stall, args=(move.source.session, last, done, timeout), daemon=True
        )
        watchdog.start()
        try:
            return transfer(progress)
        except Exception as error:
            raise _disk_full(move.target, request.shard_id, error) or error from None
        finally:
            done.set()
            watchdog.join()

    def _finish(
        self,
        request: MoveRequest,
        route: Route,
        index_source: bool = False,
        source_rt: ShardRuntime | None = None,
    ) -> None:
        """After the commit point: clean the source, push routing, done (idempotent). With
        `index_source`, the source cuts its old state into its store in the background first,
        so a move back sends only what changed. `source_rt`: the move's runtime of the source
        (its helper already checked), else a new one."""
        move_id = request.move_id
        source_rt = source_rt or self.hosts[request.from_host].runtime()
        source_rt.clean(request.shard_id, index=index_source)
        self._step(move_id, "source_cleaned", {"host": request.from_host})
        detail = self._push_routing(move_id, request.shard_id)
        self._step(move_id, "routing_pushed", detail)
        error = f"routing push failed: {detail['failed']}" if detail["failed"] else None
        self._step(move_id, "done", {"generation": route.generation}, status="done", error=error)

    def _push_routing(self, move_id: str, shard_id: str) -> dict[str, object]:
        """Push the routing document to every dependent host, retrying the ones that miss it
        (`routing_push_attempts`, with a growing pause); a host that missed every attempt goes
        to `ops.routing_backlog`, where `push_missed_routing` retries it later. Returns the
        step's detail: hosts pushed, hosts that needed a retry (first error) and hosts that
        missed every attempt."""
        document = routing_document(self.ops.routes())
        pushed: list[str] = []
        retried: dict[str, str] = {}
        failed: dict[str, str] = {}
        pending = list(dict.fromkeys(self.dependents(shard_id)))
        for attempt in range(1, self.settings.routing_push_attempts + 1):
            failed = {}
            with ThreadPoolExecutor(max_workers=max(1, len(pending))) as pushers:
                futures = {
                    host_id: pushers.submit(
                        push_routing, self.hosts[host_id].session, self.hosts[host_id].root,
                        document,
                    )
                    for host_id in pending
                }  # fmt: skip
            for host_id, future in futures.items():
                error = future.exception()
                if error is None:
                    pushed.append(host_id)
                else:  # one unreachable dependent must not undo a cutover
                    failed[host_id] = f"attempt {attempt}: {_describe(error)}"
                    retried.setdefault(host_id, failed[host_id])
            pending = list(failed)
            if not pending or attempt == self.settings.routing_push_attempts:
                break
            time.sleep(self.settings.routing_push_pause * attempt)
        self.ops.routing_delivered(pushed)
        for host_id, error in failed.items():
            self.ops.routing_missed(host_id, move_id, self.settings.routing_push_attempts, error)
        return {"hosts": pushed, "retried": retried, "failed": failed}

    def _roll_forward(self, request: MoveRequest) -> MigrationOutcome:
        route = self.ops.route(request.shard_id)
        assert route is not None and route.host_id == request.to_host
        target_rt = self.hosts[request.to_host].runtime()
        if not target_rt.status(request.shard_id).running:
            target_rt.start(
                request.shard_id,
                route.port,
                generation=route.generation,
                bind=self.hosts[request.to_host].bind,
            )
            self._event(request.move_id, "target_restarted", {"port": route.port})
        self._finish(request, route)
        return MigrationOutcome.of(self._row(request.move_id))

    # --- rollback ------------------------------------------------------------------------

    def _rollback(self, request: MoveRequest, phase: str, reason: str) -> None:
        """Undo a move that did not reach the commit point; safe to repeat.

        The target copy goes first; the source is restarted only once the target copy is
        confirmed gone, so two copies never run. If a host is unreachable the move stays
        `rolling_back` (resumable) and the error says what is left.
        """
        move_id, shard = request.move_id, request.shard_id
        self.ops.update_migration(move_id, status="rolling_back", error=reason)
        route = self.ops.route(shard)
        assert route is not None and route.host_id == request.from_host, "commit point passed"
        source = self.hosts[request.from_host]
        target_may_run = PHASES.index(phase) >= TARGET_MAY_RUN
        notes: dict[str, str] = {}
        try:
            self.hosts[request.to_host].runtime().clean(shard)
        except Exception as error:
            notes["target"] = f"not cleaned: {_describe(error)}"
            if target_may_run:
                self._rollback_incomplete(
                    move_id,
                    reason,
                    notes,
                    "the source stays stopped until the target copy is confirmed gone",
                )
                return
        try:
            source_rt = source.runtime()
            status = source_rt.status(shard)
            if status.running and status.frozen:
                source_rt.thaw(shard)
            elif not status.running:
                source_rt.start(shard, route.port, generation=route.generation, bind=source.bind)
            source_rt.health(shard, route.port, self.settings.health_timeout)
        except Exception as error:
            notes["source"] = f"not resumed: {_describe(error)}"
            self._rollback_incomplete(move_id, reason, notes, "re-run the move to finish")
            return
        self.ops.update_migration(move_id, status="rolled_back", error=_with_notes(reason, notes))
        self._event(move_id, "rolled_back", {"reason": reason, "from_phase": phase, **notes})

    def _rollback_incomplete(self, move_id: str, reason: str, notes: dict, advice: str) -> None:
        error = _with_notes(reason, notes) + f"; rollback incomplete: {advice}"
        self.ops.update_migration(move_id, error=error)
        self._event(move_id, "rollback_incomplete", {"reason": reason, **notes})

    # --- bookkeeping ---------------------------------------------------------------------

    def _step(self, move_id: str, phase: str, detail: dict, **values: object) -> None:
        """Persist a protocol step (it becomes the row's phase), then announce it."""
        self._announce(self.ops.record_step(move_id, phase, detail, **values))

    def _persist(self, move_id: str, pending: list[PendingStep], **values: object) -> None:
        """Persist `pending` in one transaction (the last becomes the row's phase), empty the
        list, then announce each step."""
        steps = self.ops.record_steps(move_id, pending, **values)
        pending.clear()
        for step in steps:
            self._announce(step)

    def _persist_on_failure(self, move: _Move) -> None:
        """Record the steps a failed attempt got through, for the rollback and the ledger. If
        that fails too, the persisted phase is older, which recovery also handles: before
        `cutover` the target got no start order, from it on the target counts as running."""
        if not move.late:
            return
        try:
            self._persist(move.request.move_id, move.late)
        except Exception as error:
            log.warning("move %s: steps %s not recorded: %s", move.request.move_id,
                        [s.phase for s in move.late], _describe(error))  # fmt: skip

    def _event(self, move_id: str, name: str, detail: dict) -> None:
        """Persist an event that is not a protocol phase (resumed, rolled_back, ...)."""
        self._announce(self.ops.record_step(move_id, name, detail, set_phase=False))

    def _announce(self, step: Step) -> None:
        if self.on_event is not None:
            self.on_event(step)
        if self.after_step is not None:
            self.after_step(step.phase)


def _report_detail(report: SendReport, manifest: Manifest | None = None) -> dict:
    """A transfer's step detail; a round sent whole has no manifest (and counts files)."""
    return {
        **({"manifest": manifest.digest, "state_bytes": manifest.total_size} if manifest else {}),
        "chunks_sent": report.chunks_sent,
        "bytes_sent": report.bytes_sent,
        "content_bytes_sent": report.content_bytes_sent,
        "seconds": round(report.seconds, 3),
    }


def _nothing_to_resend(report: SendReport) -> str | None:
    """After a round sent whole: stop when the source's stat pass found nothing changed since
    (a later write is still in the frozen snapshot), instead of a round that would cut a
    snapshot only to list the same files whole again. Any change found runs round 2 as
    before, so a writer busy during round 1 is not left to the frozen round."""
    if report.changed_after != 0:
        return None
    return "nothing changed since sent (stat pass)"


def _watch_stall(
    session: SshSession, last: list[float], done: threading.Event, timeout: float
) -> None:
    """Close the broker's connection to the source host when its push reports no progress
    for `timeout` seconds.

    Why: after a link cut the broker would wait for the push's output until the command
    timeout (minutes); closing the transport makes it fail now, and the failure rolls the
    move back. (The source's own `ssh` gives up on a dead link to the target by keepalives.)
    """
    while not done.wait(min(1.0, timeout / 4)):
        if time.monotonic() - last[0] > timeout:
            transport = session.pool.client(session.endpoint).get_transport()
            if transport is not None:
                log.warning("%s: no upload progress for %.0fs, closing the connection",
                            session.endpoint.label, timeout)  # fmt: skip
                transport.close()
            return


def _disk_full(target: HostAccess, shard_id: str, error: Exception) -> TargetDiskFull | None:
    """A transfer that failed because the target's disk filled up, told apart from corruption:
    SFTP reports ENOSPC only as "Failure" and a truncated upload then fails verification, so
    the target's free space decides."""
    if "No space left on device" not in str(error):
        try:
            free = target.runtime().status(shard_id).root_free_bytes
        except Exception:  # the target is unreachable: the original error says more
            return None
        if free >= DISK_FULL_BYTES:
            return None
    else:
        free = -1
    shown = f"{free} bytes free" if free >= 0 else "no space left"
    return TargetDiskFull(
        f"target {target.host_id}: disk full under {target.root} ({shown}) while receiving "
        f"shard {shard_id}; free space there and re-run the move (was: {_describe(error)})"
    )


def _check_room(target: HostAccess, status: ShardStatus, shard_id: str, state_bytes: int) -> None:
    """Refuse early, with the numbers, rather than fill the target's disk: the target needs
    room for the compressed chunks and the restored state (counted at full size both)."""
    needed = 2 * state_bytes
    if status.root_free_bytes < needed:
        raise MigrationError(
            f"target {target.host_id}: {status.root_free_bytes} bytes free under {target.root}, "
            f"shard {shard_id} needs about {needed} (chunks + restored state)"
        )


def _original_error(row: MigrationRow, otherwise: str) -> str:
    """The error that stopped the move first, without what earlier rollbacks appended."""
    if not row.error:
        return otherwise
    return row.error.split("; rollback incomplete:")[0]


def _with_notes(reason: str, notes: dict[str, str]) -> str:
    return reason + "".join(f"; {where}: {note}" for where, note in notes.items())


def _check_same_move(row: MigrationRow, request: MoveRequest) -> None:
    recorded = (row.shard_id, row.from_host, row.to_host)
    asked = (request.shard_id, request.from_host, request.to_host)
    if recorded != asked:
        raise ValidationError(
            "move_id", request.move_id, f"already used for {recorded}, not {asked}"
        )


def _precondition(request: MoveRequest, route: Route | None) -> str | None:
    if route is None:
        return (
            f"shard {request.shard_id} is not registered in ops.routing: start or adopt it "
            f"first (skyshard shard start|adopt {request.shard_id}, or job shard_lifecycle)"
        )
    if route.host_id != request.from_host:
        return (
            f"shard {request.shard_id} is routed to {route.host_id} (generation "
            f"{route.generation}), not {request.from_host}: stale move"
        )
    return None


__all__ = [
    "HostAccess",
    "MigrationError",
    "MigrationOutcome",
    "MigrationProgress",
    "MigrationSettings",
    "Migrator",
    "MoveRequest",
    "RoutingConflict",
]
