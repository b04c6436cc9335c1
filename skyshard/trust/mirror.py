"""Mirror a ledger folder into DuckDB (`ledger.entries`, `ledger.checkpoints`) for SQL;
re-running inserts only what is new."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.entry import parse_line
from skyshard.ledger.log import LOG_FILE, checkpoint_paths, iter_lines, read_checkpoint_index
from skyshard.ledger.merkle import leaf_hash
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


def mirror_ledger(con: Any, directory: Path) -> tuple[int, int]:
    """Copy new entries and all checkpoints into `con` (a duckdb connection).
    Returns (entries inserted, checkpoints written)."""
    directory = Path(directory)
    con.execute(_SCHEMA)
    (max_seq,) = con.execute("SELECT coalesce(max(seq), -1) FROM ledger.entries").fetchone()
    rows: dict[str, list] = {
        k: []
        for k in ("seq", "type", "run_id", "ts", "actor", "payload", "key_id", "leaf_hash", "line")
    }
    log = directory / LOG_FILE
    for index, (_, line) in enumerate(iter_lines(log) if log.exists() else ()):
        if index <= max_seq:
            continue
        entry = parse_line(line)
        for name, value in (
            ("seq", entry.seq),
            ("type", entry.type),
            ("run_id", entry.run_id),
            ("ts", entry.ts),
            ("actor", entry.actor),
            ("payload", json.dumps(entry.payload, sort_keys=True, ensure_ascii=False)),
            ("key_id", entry.key_id),
            ("leaf_hash", leaf_hash(line).hex()),
            ("line", line.decode()),
        ):
            rows[name].append(value)
    new_entries = pa.table(rows)  # noqa: F841 - read by DuckDB's replacement scan
    con.execute(
        "INSERT INTO ledger.entries SELECT seq, type, run_id, ts::TIMESTAMPTZ, actor, "
        "payload::JSON, key_id, leaf_hash, line FROM new_entries"
    )
    signed_at = read_checkpoint_index(directory)
    checkpoints = 0
    for path in checkpoint_paths(directory):
        text = path.read_text()
        checkpoint = Checkpoint.from_note(text)
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
