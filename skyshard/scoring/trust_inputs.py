"""Trust scores as planning reads them: `trust.scores` when the trust framework wrote it,
otherwise every provider at the policy's neutral score (same columns, so nothing changes
downstream when the real scores land)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

import duckdb
import polars as pl

TRUST_TABLE = "trust.scores"
TRUST_SCHEMA = {
    "provider_id": pl.String,
    "score": pl.Float64,
    "computed_at": pl.Datetime("us"),
    "components": pl.String,
    "ledger_seq": pl.Int64,
    "leaf_hash": pl.String,
}


def neutral_trust_scores(
    provider_ids: Iterable[str], neutral_score: float, computed_at: datetime | None = None
) -> pl.DataFrame:
    """One row per provider at `neutral_score`, with no ledger entry behind it."""
    if not 0.0 <= neutral_score <= 1.0:
        raise ValueError(f"policy.trust.neutral_score must be in [0, 1], got {neutral_score!r}")
    at = (computed_at or datetime.now(UTC)).replace(tzinfo=None)
    ids = sorted(set(provider_ids))
    components = json.dumps({"neutral": neutral_score, "reason": "no trust evidence yet"})
    return pl.DataFrame(
        {
            "provider_id": ids,
            "score": [float(neutral_score)] * len(ids),
            "computed_at": [at] * len(ids),
            "components": [components] * len(ids),
            "ledger_seq": [None] * len(ids),
            "leaf_hash": [None] * len(ids),
        },
        schema=TRUST_SCHEMA,
    )


def read_trust_scores(
    con: duckdb.DuckDBPyConnection, provider_ids: Iterable[str], neutral_score: float
) -> pl.DataFrame:
    """The latest stored score per provider; providers without one get the neutral score."""
    ids = sorted(set(provider_ids))
    stored = pl.DataFrame(schema=TRUST_SCHEMA)
    exists = con.execute(
        "select count(*) from information_schema.tables "
        "where table_catalog = current_database() "
        "and table_schema = 'trust' and table_name = 'scores'"
    ).fetchall()[0][0]
    if exists:
        stored = (
            con.sql(f"select * from {TRUST_TABLE}")
            .pl()
            .select(TRUST_SCHEMA.keys())
            .cast(TRUST_SCHEMA)
            .sort("computed_at")
            .group_by("provider_id")
            .last()
        )
    missing = [p for p in ids if p not in set(stored["provider_id"])]
    return pl.concat(
        [
            stored.filter(pl.col("provider_id").is_in(ids)),
            neutral_trust_scores(missing, neutral_score),
        ]
    ).sort("provider_id")
