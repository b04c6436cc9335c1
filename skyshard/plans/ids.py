"""Deterministic ids: the same planning inputs give the same plan run and move ids, so running
a cycle twice proposes nothing new and loses no decision."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:  # an annotation only: importing it would load pydantic
    from skyshard.config.policy import PolicyFile


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\x00")
    return h.hexdigest()


def inputs_hash(scores: pl.DataFrame, policy: PolicyFile, as_of: datetime, horizon_h: int) -> str:
    """Hash of what a plan depends on: every candidate's terms and blocks (they carry the
    forecasts, prices, trust and current placement), the policy, as-of time and horizon.

    Row hashes come from polars (stable for one polars version, which pins this project)."""
    keyed = scores.sort("shard_id", "host_id").select(
        "shard_id", "host_id", "is_current", pl.col("total").round(9), "blocked_by"
    )
    rows = keyed.hash_rows(seed=0).to_numpy().tobytes()
    return _digest(
        rows,
        policy.model_dump_json(),
        as_of.isoformat(),
        json.dumps(horizon_h),
    )


def plan_run_id(inputs: str) -> str:
    return f"run-{inputs[:16]}"


def move_id(shard_id: str, from_host: str, to_host: str, inputs: str) -> str:
    return f"mv-{_digest(shard_id, from_host, to_host, inputs)[:16]}"
