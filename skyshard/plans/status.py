"""Move statuses and the transitions between them that a plan may make."""

from __future__ import annotations

from enum import StrEnum


class PlanError(ValueError):
    """A plan operation that cannot be done: unknown id, forbidden transition, bad argument."""


class MoveStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


TRANSITIONS: dict[MoveStatus, frozenset[MoveStatus]] = {
    MoveStatus.PROPOSED: frozenset({MoveStatus.APPROVED, MoveStatus.REJECTED}),
    MoveStatus.APPROVED: frozenset({MoveStatus.RUNNING, MoveStatus.REJECTED}),
    MoveStatus.RUNNING: frozenset({MoveStatus.DONE, MoveStatus.FAILED}),
    MoveStatus.FAILED: frozenset({MoveStatus.ROLLED_BACK}),
    MoveStatus.DONE: frozenset({MoveStatus.ROLLED_BACK}),
    MoveStatus.REJECTED: frozenset(),
    MoveStatus.ROLLED_BACK: frozenset(),
}


def parse_status(value: str) -> MoveStatus:
    try:
        return MoveStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in MoveStatus)
        raise PlanError(f"status {value!r} is not one of: {allowed}") from None


def check_transition(move_id: str, current: str, target: MoveStatus) -> None:
    """Raise PlanError naming the move and both statuses unless `current -> target` is allowed."""
    now = parse_status(current)
    if target not in TRANSITIONS[now]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[now])) or "none (final)"
        raise PlanError(
            f"move {move_id}: cannot go from {now.value!r} to {target.value!r}; "
            f"allowed from {now.value!r}: {allowed}"
        )
