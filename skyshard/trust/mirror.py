"""Mirror the verified ledger into DuckDB (`ledger.entries`, `ledger.checkpoints`) for SQL;
re-running checks what is there against the log and inserts only what is new."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from skyshard.ledger import Entry, Ledger
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.log import checkpoint_paths, read_checkpoint_index
from skyshard.ledger.merkle import MerkleTree, leaf_hash
from skyshard.ledger.note import parse_note

_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS ledger;
CREATE TABLE IF NOT EXISTS ledger.entries (
    seq BIGINT PRIMARY KEY,
    type VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    actor VARCHAR NOT NULL,
    payload JSON NOT NULL,
    key_id VARCHAR NOT NULL,
    leaf_hash VARCHAR NOT NULL,
    line VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger.checkpoints (
    size BIGINT PRIMARY KEY,
    root_hash VARCHAR NOT NULL,
    note VARCHAR NOT NULL,
    signed_at TIMESTAMPTZ,
    cosigners VARCHAR[] NOT NULL
);
"""


class MirrorError(ValueError):
    """The SQL mirror holds rows the verified log does not: it was edited."""


def check_mirror(con: Any, entries: Sequence[Entry]) -> int:
    """Refuse a mirror whose rows differ from the verified `entries`; returns its row count."""
    stored = con.execute("SELECT seq, leaf_hash, line FROM ledger.entries ORDER BY seq").fetchall()
    for position, (seq, hash_hex, line) in enumerate(stored):
        good = seq == position < len(entries) and entries[seq].line == line.encode()
        if not good or leaf_hash(line.encode()).hex() != hash_hex:
            raise MirrorError(
                f"ledger.entries row seq {seq} differs from entry {position} of the verified "
                "log; drop the ledger schema to rebuild the mirror"
            )
    return len(stored)


def mirror_ledger(con: Any, ledger: Ledger) -> tuple[int, int]:
    """Copy new verified entries and the checkpoints matching them into `con` (a duckdb
    connection), after checking every row already there against the verified log.
    Returns (entries inserted, checkpoints written)."""
    con.execute(_SCHEMA)
    entries = ledger.verified_entries()
    stored = check_mirror(con, entries)
    rows: dict[str, list] = {
        k: []
        for k in ("seq", "type", "run_id", "ts", "actor", "payload", "key_id", "leaf_hash", "line")
    }
    for entry in entries[stored:]:
        for name, value in (
            ("seq", entry.seq),
            ("type", entry.type),
            ("run_id", entry.run_id),
            ("ts", entry.ts),
            ("actor", entry.actor),
            ("payload", json.dumps(entry.payload, sort_keys=True, ensure_ascii=False)),
            ("key_id", entry.key_id),
            ("leaf_hash", leaf_hash(entry.line).hex()),
            ("line", entry.line.decode()),
        ):
            rows[name].append(value)
    new_entries = pa.table(rows)  # noqa: F841 - read by DuckDB's replacement scan
    con.execute(
        "INSERT INTO ledger.entries SELECT seq, type, run_id, ts::TIMESTAMPTZ, actor, "
        "payload::JSON, key_id, leaf_hash, line FROM new_entries"
    )
    tree = MerkleTree.from_leaves(e.line for e in entries)
    signed_at = read_checkpoint_index(ledger.directory)
    checkpoints = 0
    for path in checkpoint_paths(ledger.directory):
        text = path.read_text()
        checkpoint = Checkpoint.from_note(text)
        if checkpoint.size > tree.size or tree.root(checkpoint.size) != checkpoint.root_hash:
            continue  # not a checkpoint of the verified log: `ledger verify` reports it
        cosigners = [s.name for s in parse_note(text).signatures if s.name != checkpoint.origin]
        con.execute(
            "INSERT OR REPLACE INTO ledger.checkpoints VALUES (?, ?, ?, ?::TIMESTAMPTZ, ?)",
            [
                checkpoint.size,
                checkpoint.root_hash.hex(),
                text,
                signed_at.get(checkpoint.size),
                cosigners,
            ],
        )
        checkpoints += 1
    return len(rows["seq"]), checkpoints
