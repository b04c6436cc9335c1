"""What a placement constraint family is: one class that every consumer asks.

The MILP (`problem.build_problem`), the candidate filters and current-host states
(`candidates`), the LP-guided heuristic and the greedy baseline (through a `Tracker`), the
checker (`check.violations_of`) and the pre-checks that explain a plan (`explain`) all iterate
`Instance.constraints`, the families bound to one input. A family overrides only the methods
that concern it; every default adds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from skyshard.placement.model import RESOURCES, PlacementInput

if TYPE_CHECKING:
    from skyshard.placement.candidates import Candidates
    from skyshard.placement.explain import Situation
    from skyshard.placement.instance import Instance
    from skyshard.placement.problem import Penalties

NO_INDEX = -1
SHOWN = 8  # shard names listed per message


@dataclass(frozen=True)
class Violation:
    family: str  # a constraint family's name, or policy, hysteresis, unplaced
    message: str


def names(ids: list[str], indices: np.ndarray | list[int]) -> str:
    listed = [ids[int(i)] for i in list(indices)[:SHOWN]]
    more = len(indices) - SHOWN
    return ", ".join(listed) + (f" and {more} more" if more > 0 else "")


class Rows:
    """Accumulates COO triplets and row bounds one block of rows at a time, the helper columns
    (numbered from `first_helper`) and, per elastic row, its slack's price and upper bound."""

    def __init__(self, first_helper: int) -> None:
        self.n = 0
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.first_helper = first_helper
        self.helper_upper: list[np.ndarray] = []
        self.helper_integer: list[np.ndarray] = []
        self.n_helpers = 0
        self.slack_rows: list[np.ndarray] = []
        self.slack_price: list[np.ndarray] = []
        self.slack_upper: list[np.ndarray] = []

    def add(
        self,
        count: int,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray | float,
        lower: np.ndarray | float,
        upper: np.ndarray | float,
        slack: tuple[np.ndarray | float, np.ndarray | float] | None = None,
    ) -> np.ndarray:
        """Adds `count` rows; `rows` are 0-based within the block. `slack` = (price per unit,
        largest useful value) makes the rows elastic. Returns their row ids."""
        self.rows.append(np.asarray(rows, dtype=np.int64) + self.n)
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.broadcast_to(np.asarray(vals, dtype=float), (len(rows),)))
        self.lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (count,)))
        self.upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (count,)))
        ids = np.arange(self.n, self.n + count)
        self.n += count
        if slack is not None:
            self.slack_rows.append(ids)
            self.slack_price.append(np.broadcast_to(np.asarray(slack[0], dtype=float), (count,)))
            self.slack_upper.append(np.broadcast_to(np.asarray(slack[1], dtype=float), (count,)))
        return ids

    def helpers(self, count: int, upper: np.ndarray | float, integer: bool) -> np.ndarray:
        self.helper_upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (count,)))
        self.helper_integer.append(np.full(count, int(integer), dtype=np.int32))
        ids = np.arange(self.n_helpers, self.n_helpers + count) + self.first_helper
        self.n_helpers += count
        return ids


@dataclass(frozen=True, eq=False)
class Build:
    """The MILP under construction: x columns are the candidates `columns` (their `shard` and
    `host` given), the rows go to `rows`, elastic ones priced from `pen`."""

    inst: Instance
    cands: Candidates
    columns: np.ndarray
    shard: np.ndarray
    host: np.ndarray
    rows: Rows
    pen: Penalties


class Tracker:
    """A family's view of a partial assignment, for the heuristic and the greedy baseline."""

    def fits(self, shard: int, cols: np.ndarray, hosts: np.ndarray) -> np.ndarray | None:
        """Whether adding the unassigned shard on each of `hosts` (its candidate `cols`) keeps
        the rule; None: every host does."""
        return None

    def update(self, shard: int, col: int, host: int, sign: int) -> None:
        """The shard was added to (sign +1) or removed from (-1) the host of column `col`."""

    def short(self, shard: int, host: int) -> np.ndarray | None:
        """(resources,) what the host lacks for the shard, so the heuristic knows which
        shards moving away would make room; None: no resource."""
        return None


class Trackers:
    """The trackers of several families as one: a host fits when it fits every family."""

    def __init__(self, families: Sequence[Family], inst: Instance, cands: Candidates) -> None:
        found = [family.tracker(inst, cands) for family in families]
        trackers = [tracker for tracker in found if tracker is not None]
        # bound methods, and only the overridden ones: the heuristic calls these per shard
        self._fits = [t.fits for t in trackers if type(t).fits is not Tracker.fits]
        self._updates = [t.update for t in trackers]
        self._shorts = [t.short for t in trackers if type(t).short is not Tracker.short]

    def fits(self, shard: int, cols: np.ndarray, hosts: np.ndarray) -> np.ndarray:
        ok = None
        for fits in self._fits:
            found = fits(shard, cols, hosts)
            if found is not None:
                ok = found if ok is None else ok & found
        return np.ones(len(cols), dtype=bool) if ok is None else ok

    def update(self, shard: int, col: int, host: int, sign: int) -> None:
        for update in self._updates:
            update(shard, col, host, sign)

    def short(self, shard: int, host: int) -> np.ndarray:
        lacking = np.zeros(len(RESOURCES), dtype=bool)
        for short in self._shorts:
            found = short(shard, host)
            if found is not None:
                lacking |= found
        return lacking


class Family:
    """One constraint family. `name` is its `Violation.family`; `capacity_like` families limit
    what a host holds (the alone-fit filter, relief of hosts over them now, the greedy
    baseline's `respect_capacity`); `in_greedy` families are kept by the greedy baseline;
    `rule_type` is the type of the `PlacementInput.rules` items the family reads, if any."""

    name: ClassVar[str]
    capacity_like: ClassVar[bool] = False
    in_greedy: ClassVar[bool] = False
    rule_type: ClassVar[type | None] = None

    @classmethod
    def bind(
        cls, inp: PlacementInput, shard_pos: Mapping[str, int], host_pos: Mapping[str, int]
    ) -> Family | None:
        """The family for this input (validated), or None when the input has nothing for it
        to do, so no consumer spends time on it."""
        return cls()

    def fits_alone(self, inst: Instance, shard: np.ndarray, host: np.ndarray) -> np.ndarray | None:
        """Per (shard, host) pair, whether the shard alone may use the host."""
        return None

    def prune(self, inst: Instance, keep: np.ndarray) -> np.ndarray:
        """Candidate rows (`keep` over the Instance rows) that can still be part of a plan
        keeping the rule; drop only rows no rule-keeping plan can use."""
        return keep

    def overloaded_hosts(self, inst: Instance) -> np.ndarray | None:
        """(hosts,) hosts the current placement puts over the family's limit (relief)."""
        return None

    def conflicted_shards(self, inst: Instance) -> np.ndarray | None:
        """(shards,) shards whose current placement breaks the rule."""
        return None

    def rows(self, build: Build) -> np.ndarray | None:
        """Adds the family's rows; elastic (`slack=`) so the problem stays feasible. Returns a
        row map for `dual_term` when the rows must enter pricing (see `dual_term`)."""
        return None

    def dual_term(
        self,
        inst: Instance,
        row_map: np.ndarray,
        shard: np.ndarray,
        host: np.ndarray,
        dual: np.ndarray,
    ) -> np.ndarray:
        """Sum over the family's rows of coefficient x dual for candidates (shard, host), left
        out of the LP. Rows may skip it only if they are <= rows with non-negative coefficients
        on x (their duals are <= 0, so leaving them out only lowers the reduced cost)."""
        raise NotImplementedError(f"{self.name}: rows returned a row map without a dual_term")

    def tracker(self, inst: Instance, cands: Candidates) -> Tracker | None:
        return None

    def check(self, inst: Instance, host_of: np.ndarray) -> list[Violation]:
        """What the assignment (`host_of`: host index per shard, NO_INDEX unplaced) breaks."""
        return []

    def why_alone(self, inst: Instance, shard: int, hosts: np.ndarray) -> list[str]:
        """Why the shard fits none of `hosts` (its allowed hosts) on its own, if this family
        is the reason."""
        return []

    def pre_check(self, inst: Instance, situation: Situation) -> list[str]:
        """What cheap arithmetic proves no plan can fix, one line each."""
        return []


def bind_all(
    families: Sequence[type[Family]],
    inp: PlacementInput,
    shard_pos: Mapping[str, int],
    host_pos: Mapping[str, int],
) -> tuple[Family, ...]:
    """Every family bound to the input; a rule no family reads is an error."""
    read = tuple(f.rule_type for f in families if f.rule_type is not None)
    for i, rule in enumerate(inp.rules):
        if not isinstance(rule, read):
            raise ValueError(
                f"rules[{i}] = {rule!r}: not a rule of any placement constraint family"
            )
    bound = (family.bind(inp, shard_pos, host_pos) for family in families)
    return tuple(family for family in bound if family is not None)
