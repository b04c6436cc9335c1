"""The trust assets through Dagster: scores recorded in the ledger with their seq in
`trust.scores`, the settlement table, the DuckDB mirror, and a ledger that still verifies."""

from __future__ import annotations

import dagster as dg
import duckdb
from click.testing import CliRunner

from assets.trust import ledger_mirror, settlement, trust_scores
from orchestration.resources import build_resources
from skyshard.cli.ledger import ledger as ledger_group
from skyshard.config import paths
from skyshard.ledger import Ledger
from skyshard.scoring.trust_inputs import read_trust_scores
from skyshard.trust.events import migration_payload, record_dispute_opened, record_migration


def test_trust_assets_end_to_end(sky_home):
    ledger = Ledger.open()
    record_migration(
        "migration_completed",
        "run-0",
        migration_payload("m1", "orders-db-000", "aws-use1", "fra-colo", 2 << 30),
        ledger=ledger,
    )
    record_dispute_opened("edge-net", "dropped traffic", "alice", ledger=ledger)
    database = paths.duckdb_path()
    result = dg.materialize(
        [trust_scores, settlement, ledger_mirror],
        resources=build_resources(),
    )
    assert result.success

    entries = {e.seq: e for e in Ledger.open().entries("trust_score")}
    assert len(entries) == 3
    with duckdb.connect(str(database), read_only=True) as con:
        scores = con.sql("select * from trust.scores order by provider_id").pl()
        planner_view = read_trust_scores(con, ["aws-use1", "edge-net", "fra-colo"], 0.5)
        settled = con.sql("select * from trust.settlement order by provider_id").pl()
        mirrored = con.sql("select seq, type from ledger.entries order by seq").fetchall()
        [(checkpoint_size,)] = con.execute("select max(size) from ledger.checkpoints").fetchall()
    assert scores["provider_id"].to_list() == ["aws-use1", "edge-net", "fra-colo"]
    for provider, score, seq in scores.select("provider_id", "score", "ledger_seq").iter_rows():
        assert entries[seq].payload["provider"] == provider
        assert entries[seq].payload["score"] == score
        assert entries[seq].run_id == result.run_id
    by_provider = dict(scores.select("provider_id", "score").iter_rows())
    assert by_provider["edge-net"] == 0.4  # no evidence, one open dispute: 0.5 × 0.8
    assert by_provider["fra-colo"] > 0.5  # one successful migration received
    assert planner_view.equals(scores.select(planner_view.columns))

    fra = settled.filter(settled["provider_id"] == "fra-colo").row(0, named=True)
    assert fra["gib_transferred"] == 2
    assert fra["owed"] >= 2 * 0.01  # settle_per_gb_transferred 0.01 (+ shard-hours)
    aws = settled.filter(settled["provider_id"] == "aws-use1").row(0, named=True)
    assert (aws["monthly_budget"], aws["over_budget"], aws["over_price_cap"]) == (
        4000,
        False,
        False,
    )

    assert [t for _, t in mirrored] == [
        "migration_completed",
        "dispute_opened",
        "trust_score",
        "trust_score",
        "trust_score",
    ]
    assert checkpoint_size == 5
    verify = CliRunner().invoke(ledger_group, ["verify"])
    assert verify.exit_code == 0, verify.output
    assert verify.output.startswith("ok: 5 entries, 1 checkpoints")
