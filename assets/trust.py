"""Trust assets: provider trust scores from the ledger (each recorded in the ledger), the
monthly settlement under the policy's payment terms, and the ledger's DuckDB mirror."""

from datetime import UTC, datetime

import dagster as dg
import duckdb as duckdb_lib
import polars as pl

from assets.metadata import preview
from orchestration.resources import DUCKDB_WRITER_POOL, DuckDBFile
from skyshard import db
from skyshard.home import current_sky
from skyshard.ledger import Ledger
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.trust.mirror import mirror_ledger
from skyshard.trust.scores import compute_trust_scores, record_trust_scores
from skyshard.trust.settlement import (
    SETTLEMENT_TABLE,
    months_between,
    placement_history,
    settle,
    settlement_since,
)
from skyshard.trust_inputs import TRUST_TABLE

GROUP = "trust"


def _marts(con: duckdb_lib.DuckDBPyConnection, sql: str) -> pl.DataFrame | None:
    """A query over marts, or None before dbt built them."""
    try:
        return con.sql(sql).pl()
    except duckdb_lib.CatalogException:
        return None


@dg.asset(
    group_name=GROUP,
    deps=[
        dg.AssetKey(["marts", "fct_provider_incidents"]),
        dg.AssetKey(["marts", "dim_providers"]),
    ],
    kinds={"duckdb", "python"},
    pool=DUCKDB_WRITER_POOL,
    description="`trust.scores`: one trust score per provider in [0, 1] from the ledger "
    "(migrations, audits, disputes), availability and contract tier (docs/trust.md); each "
    "score is appended to the ledger and `ledger_seq`, `leaf_hash` name its entry.",
)
def trust_scores(context: dg.AssetExecutionContext, duckdb: DuckDBFile):
    sky = current_sky()
    as_of = datetime.now(UTC)
    ledger = Ledger.open()
    with duckdb.connect() as con:
        incidents = _marts(
            con, "select provider_id, day, availability from marts.fct_provider_incidents"
        )
    scores = compute_trust_scores(
        ledger.verified_entries(),
        {p.id: p.contract.tier for p in sky.providers},
        sky.policy.trust,
        as_of,
        incidents,
    )
    table = record_trust_scores(ledger, scores, sky.policy.trust, as_of, context.run_id)
    with duckdb.connect() as con:
        db.replace_table(con, TRUST_TABLE, table)
    shown = table.select("provider_id", "score", "ledger_seq").sort("score")
    return dg.MaterializeResult(
        metadata={"dagster/row_count": table.height, "scores": preview(shown, 50)}
    )


@dg.asset(
    group_name=GROUP,
    deps=[dg.AssetKey(["marts", "fct_provider_price_hourly"])],
    kinds={"duckdb", "python"},
    pool=DUCKDB_WRITER_POOL,
    description="`trust.settlement`: what is owed to each provider per month (shard-hours and "
    "GiB transferred from the ledger at the policy's settlement rates), with price-cap and "
    "monthly-budget overruns flagged.",
)
def settlement(duckdb: DuckDBFile):
    sky = current_sky()
    until = datetime.now(UTC)
    entries = Ledger.open().verified_entries()
    since = settlement_since(entries, until)
    initial = {s.id: sky.hosts[s.current_host][0].id for s in sky.shards}
    prices = {
        (p.id, month): p.contract.price_per_cpu_hour
        for p in sky.providers
        for month in months_between(since, until)
    }
    with duckdb.connect() as con:
        observed = _marts(
            con,
            "select provider_id, date_trunc('month', hour)::date as month, "
            "avg(price_per_cpu_hour) as price from marts.fct_provider_price_hourly group by all",
        )
    if observed is not None:
        prices = {(p, m): price for p, m, price in observed.iter_rows()}
    table = settle(
        sky.policy,
        [p.id for p in sky.providers],
        placement_history(initial, entries, since, until),
        entries,
        since,
        until,
        prices,
    )
    with duckdb.connect() as con:
        db.replace_table(con, SETTLEMENT_TABLE, table)
    flagged = table.filter(pl.col("over_budget") | pl.col("over_price_cap"))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.height,
            "overruns": flagged.height,
            "settlement": preview(
                table.select("provider_id", "month", "shard_hours", "owed", "over_budget"), 50
            ),
        }
    )


@dg.asset(
    group_name=GROUP,
    deps=[trust_scores, dg.AssetKey("migration_plan")],
    kinds={"duckdb", "python"},
    pool=DUCKDB_WRITER_POOL,
    description="`ledger.entries`, `ledger.checkpoints`: the verified ledger mirrored into "
    "DuckDB for SQL after planning (and after every migration), after signing a checkpoint.",
)
def ledger_mirror(duckdb: DuckDBFile):
    ledger = Ledger.open()
    checkpoint = Checkpoint.from_note(ledger.checkpoint())
    with duckdb.connect() as con:
        inserted, checkpoints = mirror_ledger(con, ledger)
    return dg.MaterializeResult(
        metadata={
            "entries_inserted": inserted,
            "checkpoints": checkpoints,
            "tree_size": checkpoint.size,
            "root_hash": checkpoint.root_hash.hex(),
        }
    )


defs = dg.Definitions(assets=[trust_scores, settlement, ledger_mirror])
