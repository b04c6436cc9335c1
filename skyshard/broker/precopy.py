"""When to stop pre-copying and freeze (the P.Haul rule)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrecopyRule:
    """Stop after `max_rounds`, or once a round sent at most `small_bytes`, or when a round
    sent more than `shrink_ratio` times the previous one (the delta stopped shrinking: the
    writer dirties data as fast as we copy it, so more rounds would not cut downtime).
    `max_rounds=0` is stop-and-copy: freeze first, everything is sent in the frozen round."""

    max_rounds: int = 5
    small_bytes: int = 4 << 20
    shrink_ratio: float = 0.8

    def __post_init__(self) -> None:
        if self.max_rounds < 0:
            raise ValueError(f"max_rounds must be at least 0, got {self.max_rounds}")
        if not 0 < self.shrink_ratio <= 1:
            raise ValueError(f"shrink_ratio must be in (0, 1], got {self.shrink_ratio}")

    def stop_reason(self, round_bytes: list[int]) -> str | None:
        """Why to stop after the rounds so far (content bytes each sent), or None to go on."""
        if not round_bytes:
            return None
        last = round_bytes[-1]
        if last <= self.small_bytes:
            return f"delta {last} B is at most {self.small_bytes} B"
        if len(round_bytes) >= self.max_rounds:
            return f"reached {self.max_rounds} rounds"
        if len(round_bytes) >= 2 and last > self.shrink_ratio * round_bytes[-2]:
            return f"delta stopped shrinking ({round_bytes[-2]} B then {last} B)"
        return None
