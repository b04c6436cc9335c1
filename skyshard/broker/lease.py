"""One broker per move: a lease in `ops.move_leases` (owner, heartbeat, expiry), taken before
any remote effect and renewed in the background while the move runs.

A second run of the move waits up to `wait` seconds, then refuses naming the owner. A lease
whose owner stopped renewing it (the broker died: SIGKILL, lost machine) expires after `ttl`
seconds, and the next run takes it over; the commit point (`switch_route`) checks the lease in
its own transaction, so a broker that lost its lease can never switch routing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from skyshard.broker.ops_tables import Lease, OpsStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseSettings:
    ttl: float = 120.0
    # Seconds a second run waits for the owner to finish before it refuses.
    wait: float = 0.0
    poll: float = 1.0

    @property
    def heartbeat(self) -> float:
        return self.ttl / 4


class MoveLeaseHeld(RuntimeError):
    """Another broker runs this move (its lease is live)."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        super().__init__(
            f"move {lease.move_id} is being run by {lease.owner} (lease renewed "
            f"{lease.heartbeat_at:%H:%M:%S}, expires {lease.expires_at:%H:%M:%S} UTC); "
            "not starting a second broker for it"
        )


class MoveLease:
    """The lease of one move, held by `owner` inside a `with` block (heartbeat thread)."""

    def __init__(
        self, ops: OpsStore, move_id: str, owner: str, settings: LeaseSettings | None = None
    ) -> None:
        self.ops = ops
        self.move_id = move_id
        self.owner = owner
        self.settings = settings or LeaseSettings()
        self.taken_over: Lease | None = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> MoveLease:
        deadline = time.monotonic() + self.settings.wait
        while True:
            lease, stale = self.ops.take_lease(self.move_id, self.owner, self.settings.ttl)
            if lease.owner == self.owner:
                self.taken_over = stale
                break
            if time.monotonic() >= deadline:
                raise MoveLeaseHeld(lease)
            time.sleep(self.settings.poll)
        if self.taken_over is not None:
            log.warning("move %s: took over the expired lease of %s", self.move_id,
                        self.taken_over.owner)  # fmt: skip
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.lost.is_set():
            self.ops.release_lease(self.move_id, self.owner)

    def _beat(self) -> None:
        while not self._stop.wait(self.settings.heartbeat):
            try:
                if not self.ops.renew_lease(self.move_id, self.owner, self.settings.ttl):
                    log.error("move %s: lease lost by %s", self.move_id, self.owner)
                    self.lost.set()
                    return
            except Exception as error:  # a lock held elsewhere: the next beat tries again
                log.warning("move %s: lease not renewed: %r", self.move_id, error)
