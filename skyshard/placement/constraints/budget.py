"""The move budget: at most `Budget.max_moves` shards leave their current host per cycle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from skyshard.placement.constraints.base import Build, Family, Tracker, Violation, names
from skyshard.placement.model import PlacementInput

if TYPE_CHECKING:
    from skyshard.placement.candidates import Candidates
    from skyshard.placement.explain import Situation
    from skyshard.placement.instance import Instance


class _Moves(Tracker):
    def __init__(self, cands: Candidates, max_moves: int) -> None:
        self.is_move = cands.is_move
        self.max_moves = max_moves
        self.moves = 0

    def fits(self, shard: int, cols: np.ndarray, hosts: np.ndarray) -> np.ndarray | None:
        return ~self.is_move[cols] if self.moves >= self.max_moves else None

    def update(self, shard: int, col: int, host: int, sign: int) -> None:
        self.moves += sign * int(self.is_move[col])


class MoveBudget(Family):
    """One hard row: the candidates that move a shard sum to at most max_moves (staying is
    always possible, so it never makes the problem infeasible)."""

    name = "budget"

    def __init__(self, max_moves: int) -> None:
        self.max_moves = max_moves

    @classmethod
    def bind(
        cls, inp: PlacementInput, shard_pos: Mapping[str, int], host_pos: Mapping[str, int]
    ) -> Family | None:
        return None if inp.budget.max_moves is None else cls(inp.budget.max_moves)

    def rows(self, build: Build) -> None:
        moves = np.flatnonzero(build.cands.is_move[build.columns])
        build.rows.add(1, np.zeros(len(moves)), moves, 1.0, -np.inf, float(self.max_moves))

    def tracker(self, inst: Instance, cands: Candidates) -> Tracker:
        return _Moves(cands, self.max_moves)

    def check(self, inst: Instance, host_of: np.ndarray) -> list[Violation]:
        moved = np.flatnonzero(inst.has_current & (host_of != inst.current))
        if len(moved) <= self.max_moves:
            return []
        return [Violation("budget", f"{len(moved)} moves > max_moves {self.max_moves}")]

    def pre_check(self, inst: Instance, situation: Situation) -> list[str]:
        """Relief needs a move per shard on a gone or blocked host and one per overloaded
        host."""
        must_move, overloaded = situation.must_move, situation.overloaded
        needed = int(must_move.sum()) + int(overloaded.sum())
        if needed <= self.max_moves:
            return []
        parts = []
        if must_move.any():
            parts.append(
                "shards whose current host is gone or blocked: "
                f"{names(inst.shard_ids, np.flatnonzero(must_move))}"
            )
        if overloaded.any():
            parts.append(
                f"hosts over capacity now: {names(inst.host_ids, np.flatnonzero(overloaded))}"
            )
        return [
            f"budget: at least {needed} moves are needed but max_moves is {self.max_moves} "
            f"({'; '.join(parts)}); the plan spends the budget where it relieves most"
        ]
