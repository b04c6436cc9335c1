"""Trust assets: provider trust scores from the ledger (each recorded in the ledger), the
monthly settlement under the policy's payment terms, and the ledger's DuckDB mirror."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from assets.metadata import preview, problems_check, table_metadata
from orchestration.resources import DUCKDB_WRITER_POOL, DuckDBFile, LedgerResource, SkyResource
from skyshard import db
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.plans.checks import trust_problems
from skyshard.scoring.provider_marts import daily_availability, settlement_prices
from skyshard.scoring.trust_inputs import TRUST_TABLE
from skyshard.trust.mirror import mirror_ledger
from skyshard.trust.scores import compute_trust_scores, record_trust_scores
from skyshard.trust.settlement import (
    SETTLEMENT_TABLE,
    months_between,
    placement_history,
    settle,
    settlement_since,
)

GROUP = "trust"


@dg.asset(
    key=["trust", "scores"],
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
    check_specs=[
        dg.AssetCheckSpec(
            "every_provider_scored",
            asset=["trust", "scores"],
            description="Every configured provider has one score in [0, 1].",
        )
    ],
)
def trust_scores(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBFile,
    sky: SkyResource,
    ledger: LedgerResource,
):
    configured = sky.load()
    as_of = datetime.now(UTC)
    log = ledger.open()
    with duckdb.connect() as con:
        incidents = daily_availability(con)
    scores = compute_trust_scores(
        log.verified_entries(),
        {p.id: p.contract.tier for p in configured.providers},
        configured.policy.trust,
        as_of,
        incidents,
    )
    table = record_trust_scores(log, scores, configured.policy.trust, as_of, context.run_id)
    with duckdb.connect() as con:
        db.replace_table(con, TRUST_TABLE, table)
        described = table_metadata(con, TRUST_TABLE)
        scored = trust_problems(con, [p.id for p in configured.providers])
    shown = table.select("provider_id", "score", "ledger_seq").sort("score")
    return dg.MaterializeResult(
        metadata={
            **described,
            "lowest_score": float(table["score"].min()) if table.height else None,
            "scores": preview(shown, 50),
        },
        check_results=[problems_check("every_provider_scored", scored)],
    )


@dg.asset(
    key=["trust", "settlement"],
    group_name=GROUP,
    deps=[dg.AssetKey(["marts", "fct_provider_price_hourly"])],
    kinds={"duckdb", "python"},
    pool=DUCKDB_WRITER_POOL,
    description="`trust.settlement`: what is owed to each provider per month (shard-hours and "
    "GiB transferred from the ledger at the policy's settlement rates), with price-cap and "
    "monthly-budget overruns flagged.",
)
def settlement(duckdb: DuckDBFile, sky: SkyResource, ledger: LedgerResource):
    configured = sky.load()
    until = datetime.now(UTC)
    entries = ledger.open().verified_entries()
    since = settlement_since(entries, until)
    initial = {s.id: configured.hosts[s.current_host][0].id for s in configured.shards}
    with duckdb.connect() as con:
        prices = settlement_prices(con, configured.providers, months_between(since, until))
    table = settle(
        configured.policy,
        [p.id for p in configured.providers],
        placement_history(initial, entries, since, until),
        entries,
        since,
        until,
        prices,
    )
    with duckdb.connect() as con:
        db.replace_table(con, SETTLEMENT_TABLE, table)
        described = table_metadata(con, SETTLEMENT_TABLE)
    flagged = table.filter(pl.col("over_budget") | pl.col("over_price_cap"))
    return dg.MaterializeResult(
        metadata={
            **described,
            "overruns": flagged.height,
            "settlement": preview(
                table.select("provider_id", "month", "shard_hours", "owed", "over_budget"), 50
            ),
        }
    )


@dg.asset(
    key=["ledger", "entries"],
    group_name=GROUP,
    deps=[trust_scores, dg.AssetKey(["plan", "migration_plan"])],
    kinds={"duckdb", "python"},
    pool=DUCKDB_WRITER_POOL,
    description="`ledger.entries`, `ledger.checkpoints`: the verified ledger mirrored into "
    "DuckDB for SQL after planning (and after every migration), after signing a checkpoint.",
)
def ledger_mirror(duckdb: DuckDBFile, ledger: LedgerResource):
    log = ledger.open()
    checkpoint = Checkpoint.from_note(log.checkpoint())
    with duckdb.connect() as con:
        inserted, checkpoints = mirror_ledger(con, log)
        described = table_metadata(con, "ledger.entries")
    return dg.MaterializeResult(
        metadata={
            **described,
            "entries_inserted": inserted,
            "checkpoints": checkpoints,
            "tree_size": checkpoint.size,
            "root_hash": checkpoint.root_hash.hex(),
        }
    )


defs = dg.Definitions(assets=[trust_scores, settlement, ledger_mirror])
