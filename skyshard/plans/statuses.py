"""The mutable part of a plan, on the operational-state backend (`SKYSHARD_STATE_URL`, else
the DuckDB file): each move's status and who decided it (`ops.plan_moves`), and every decision
(`ops.plan_decisions`). The analytic rows of a move (reason, saving, risk, bytes) stay in the
DuckDB file (`plan.proposed_moves`); the two join by move id.

A move row also carries what a broker and the migration sensor need to run it (shard, hosts,
providers), so approving, sensing and migrating never open the analytics file. Every status
change is one transaction that locks the move's row (`FOR UPDATE` on Postgres, the writer lock
on DuckDB), checks the transition and updates only if the status is still the one checked:
two deciders racing on one move get exactly one change and one decision row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from skyshard.plans.status import MoveStatus, PlanError, check_transition, parse_status
from skyshard.storage.state import (
    STATE_LOCK_WAIT_S,
    DuckDBState,
    StateConnection,
    StateStore,
    open_state,
)

MOVE_ID = re.compile(r"^mv-[0-9a-f]{16}$")
DECIDER = re.compile(r"^[A-Za-z0-9_.@:+-]{1,64}$")
"""Who decided: a name or a service id, printable and short (it lands in tables and the UI)."""
SUPERSEDER = "planner"
IDENTITY = (
    "move_id", "plan_run_id", "shard_id", "from_host_id", "from_provider_id", "to_host_id",
    "to_provider_id",
)  # fmt: skip
"""Fixed when the move is planned: what running it needs."""
DECISION = ("status", "approval_mode", "approved_by", "decided_at", "decision_note")
"""What decisions change."""
COLUMNS = (*IDENTITY, *DECISION)
DECISION_COLUMNS = ("move_id", "seq", "from_status", "to_status", "decided_by", "note",
                    "decided_at")  # fmt: skip
DDL = (
    "CREATE SCHEMA IF NOT EXISTS ops",
    """CREATE TABLE IF NOT EXISTS ops.plan_moves (
        move_id VARCHAR PRIMARY KEY, plan_run_id VARCHAR NOT NULL, shard_id VARCHAR NOT NULL,
        from_host_id VARCHAR NOT NULL, from_provider_id VARCHAR NOT NULL,
        to_host_id VARCHAR NOT NULL, to_provider_id VARCHAR NOT NULL, status VARCHAR NOT NULL,
        approval_mode VARCHAR, approved_by VARCHAR, decided_at TIMESTAMP, decision_note VARCHAR,
        updated_at TIMESTAMP NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS plan_moves_status ON ops.plan_moves (status)",
    """CREATE TABLE IF NOT EXISTS ops.plan_decisions (
        move_id VARCHAR NOT NULL, seq INTEGER NOT NULL, from_status VARCHAR NOT NULL,
        to_status VARCHAR NOT NULL, decided_by VARCHAR NOT NULL, note VARCHAR,
        decided_at TIMESTAMP NOT NULL, PRIMARY KEY (move_id, seq))""",
)
TABLES = ("ops.plan_moves", "ops.plan_decisions")
CHUNK = 500
"""Rows per multi-row INSERT: one round trip each, far below Postgres' parameter limit."""
MOVE_SQL = f"SELECT {', '.join(COLUMNS)} FROM ops.plan_moves"
_SEQ = "(SELECT coalesce(max(seq), 0) + 1 FROM ops.plan_decisions d WHERE d.move_id = ?)"


def check_move_id(move_id: str) -> str:
    if not MOVE_ID.fullmatch(move_id):
        raise PlanError(f"move id {move_id!r} is malformed: expected 'mv-' and 16 hex digits")
    return move_id


def _now(at: datetime | None = None) -> datetime:
    return (at or datetime.now(UTC)).replace(tzinfo=None)


def _chunks(rows: Sequence[tuple], size: int = CHUNK) -> Iterable[Sequence[tuple]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _insert_many(con: StateConnection, head: str, rows: Sequence[tuple], tail: str = "") -> int:
    """`head VALUES (...), (...) tail` in chunks; returns the rows the statements returned."""
    returned = 0
    for chunk in _chunks(rows):
        marks = ", ".join("(" + ", ".join("?" for _ in chunk[0]) + ")" for _ in chunk)
        returned += len(con.rows(f"{head} VALUES {marks} {tail}", [v for r in chunk for v in r]))
    return returned


class PlanStatuses:
    """Statuses and decisions of planned moves, on the state backend of the DuckDB file
    `database` (or Postgres at `state_url`, default `SKYSHARD_STATE_URL`)."""

    def __init__(
        self, database: Path | str, state_url: str | None = None, wait_s: float = STATE_LOCK_WAIT_S
    ) -> None:
        self.state: StateStore = open_state(database, state_url, wait_s)
        self.state.ensure(DDL)

    @property
    def in_file(self) -> bool:
        """Whether the statuses live in the DuckDB file itself (the embedded backend)."""
        return isinstance(self.state, DuckDBState)

    def register(self, plan: pl.DataFrame, plan_run_id: str, at: datetime | None = None) -> int:
        """Record the moves of plan run `plan_run_id` with the status the planner gave them
        (moves already known keep theirs), and reject the moves still proposed by earlier runs
        that this run does not propose again. Returns how many moves were new."""
        at = _now(at)
        rows = [(*(m[c] for c in COLUMNS), at) for m in plan.select(COLUMNS).iter_rows(named=True)]
        planned = set(plan["move_id"])
        note = f"superseded by plan run {plan_run_id}"

        def record(con: StateConnection) -> int:
            head = f"INSERT INTO ops.plan_moves ({', '.join(COLUMNS)}, updated_at)"
            new = _insert_many(con, head, rows, "ON CONFLICT (move_id) DO NOTHING RETURNING 1")
            proposed = con.rows(
                f"SELECT move_id FROM ops.plan_moves WHERE status = 'proposed'{con.for_update}"
            )
            stale = sorted(move_id for (move_id,) in proposed if move_id not in planned)
            for move_id in stale:
                self._change(con, move_id, "proposed", MoveStatus.REJECTED, SUPERSEDER, note, at)
            return new

        return self.state.transact(record)

    def decide(
        self,
        move_id: str,
        target: MoveStatus | str,
        by: str,
        note: str | None = None,
        at: datetime | None = None,
    ) -> dict:
        """Move `move_id` to `target` (approved, rejected, running, ...) if the transition is
        allowed from its status now, recording who and why; returns the updated row. Nothing
        changes on error (PlanError)."""
        target = parse_status(str(target))
        check_move_id(move_id)
        if not DECIDER.match(by):
            raise PlanError(f"--by {by!r} is not a valid name: 1-64 letters, digits or _ . @ : + -")
        if note is not None and len(note) > 500:
            raise PlanError(f"--reason is {len(note)} characters long; at most 500 are kept")
        at = _now(at)

        def change(con: StateConnection) -> dict:
            found = con.row(
                f"SELECT status FROM ops.plan_moves WHERE move_id = ?{con.for_update}", [move_id]
            )
            if found is None:
                raise PlanError(f"no move with id {move_id!r} in ops.plan_moves")
            check_transition(move_id, found[0], target)
            return self._change(con, move_id, found[0], target, by, note, at)

        return self.state.transact(change)

    @staticmethod
    def _change(
        con: StateConnection,
        move_id: str,
        current: str,
        target: MoveStatus,
        by: str,
        note: str | None,
        at: datetime,
    ) -> dict:
        """Set the status (only if it is still `current`) and append the decision."""
        approving = target == MoveStatus.APPROVED
        changed = con.rows(
            "UPDATE ops.plan_moves SET status = ?, decided_at = ?, decision_note = ?, "
            "approved_by = CASE WHEN ? THEN ? ELSE approved_by END, "
            "approval_mode = CASE WHEN ? THEN 'manual' ELSE approval_mode END, updated_at = ? "
            f"WHERE move_id = ? AND status = ? RETURNING {', '.join(COLUMNS)}",
            [target.value, at, note, approving, by, approving, at, move_id, current],
        )
        if not changed:
            raise PlanError(f"move {move_id}: no longer {current!r}; decided by someone else")
        con.rows(
            f"INSERT INTO ops.plan_decisions VALUES (?, {_SEQ}, ?, ?, ?, ?, ?)",
            [move_id, move_id, current, target.value, by, note, at],
        )
        return dict(zip(COLUMNS, changed[0], strict=True))

    def move(self, move_id: str) -> dict:
        check_move_id(move_id)
        row = self.state.transact(lambda con: con.row(f"{MOVE_SQL} WHERE move_id = ?", [move_id]))
        if row is None:
            raise PlanError(f"no move with id {move_id!r} in ops.plan_moves")
        return dict(zip(COLUMNS, row, strict=True))

    def moves(self, statuses: Sequence[str] = ()) -> pl.DataFrame:
        """Every move with one of `statuses` (all when empty), oldest decision first."""
        sql, params = MOVE_SQL, [parse_status(s).value for s in statuses]
        if params:
            sql += f" WHERE status IN ({', '.join('?' for _ in params)})"
        rows = self.state.transact(
            lambda con: con.rows(sql + " ORDER BY decided_at NULLS LAST, move_id", params)
        )
        schema = {name: pl.Datetime("us") if name == "decided_at" else pl.String
                  for name in COLUMNS}  # fmt: skip
        return pl.DataFrame(rows, schema=schema, orient="row")

    def decisions(self, move_id: str) -> list[dict]:
        """The decisions on `move_id`, in order."""
        rows = self.state.transact(
            lambda con: con.rows(
                f"SELECT {', '.join(DECISION_COLUMNS)} FROM ops.plan_decisions "
                "WHERE move_id = ? ORDER BY seq",
                [move_id],
            )
        )
        return [dict(zip(DECISION_COLUMNS, row, strict=True)) for row in rows]

    def import_legacy(self, plan: pl.DataFrame, decisions: pl.DataFrame) -> None:
        """Take over the statuses and decisions of a file written before they moved here
        (moves already known keep theirs)."""
        moves = [(*row, _now()) for row in plan.select(COLUMNS).rows()]
        logged = decisions.select(DECISION_COLUMNS).rows()

        def copy(con: StateConnection) -> None:
            _insert_many(con, f"INSERT INTO ops.plan_moves ({', '.join(COLUMNS)}, updated_at)",
                         moves, "ON CONFLICT (move_id) DO NOTHING")  # fmt: skip
            _insert_many(con, "INSERT INTO ops.plan_decisions", logged,
                         "ON CONFLICT (move_id, seq) DO NOTHING")  # fmt: skip

        self.state.transact(copy)
