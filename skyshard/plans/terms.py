"""The score terms behind each move's saving: what each term costs on the shard's current host
and on its target, over the planning horizon."""

from __future__ import annotations

import polars as pl

from skyshard.scoring import TERMS

MOVE_TERMS_SCHEMA = {
    "move_id": pl.String,
    "term": pl.String,
    "from_cost": pl.Float64,
    "to_cost": pl.Float64,
    "saving": pl.Float64,
}


def _side(moves: pl.DataFrame, costs: pl.DataFrame, host: str, name: str) -> pl.DataFrame:
    renamed = costs.rename({"host_id": host, "cost": name})
    return moves.join(renamed, on=["shard_id", host]).select("move_id", "term", name)


def move_terms(plan: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """One row per move and term (MOVE_TERMS_SCHEMA), in TERMS order; `saving` is the current
    host's cost minus the target's, so positive terms argue for the move, negative against."""
    costs = scores.select("shard_id", "host_id", *TERMS).unpivot(
        index=["shard_id", "host_id"], variable_name="term", value_name="cost"
    )
    moves = plan.select("move_id", "shard_id", "from_host_id", "to_host_id")
    order = {term: i for i, term in enumerate(TERMS)}
    return (
        _side(moves, costs, "from_host_id", "from_cost")
        .join(_side(moves, costs, "to_host_id", "to_cost"), on=["move_id", "term"])
        .with_columns(saving=pl.col("from_cost") - pl.col("to_cost"))
        .sort(pl.col("move_id"), pl.col("term").replace_strict(order, return_dtype=pl.Int64))
        .select(list(MOVE_TERMS_SCHEMA))
        .cast(MOVE_TERMS_SCHEMA)
    )


def saving_by_term(terms: pl.DataFrame) -> list[tuple[str, float]]:
    """(term, saving summed over the moves) in TERMS order: what the whole plan saves on each
    term over the horizon."""
    totals = dict(terms.group_by("term").agg(pl.col("saving").sum()).iter_rows())
    return [(term, float(totals.get(term) or 0.0)) for term in TERMS]
