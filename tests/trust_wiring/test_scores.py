"""The trust formula against hand-computed values, and disputes lowering then restoring trust."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from skyshard.config.policy import TrustPolicy
from skyshard.trust.events import (
    DisputeError,
    migration_payload,
    record_dispute_opened,
    record_dispute_resolved,
    record_migration,
)
from skyshard.trust.scores import compute_trust_scores, decay, record_trust_scores

AS_OF = datetime(2026, 11, 28, tzinfo=UTC)
POLICY = TrustPolicy(neutral_score=0.5, half_life_days=10)
DAY = timedelta(days=1)


def test_decay_halves_every_half_life():
    assert decay(0, 10) == 1
    assert decay(10, 10) == 0.5
    assert decay(30, 10) == 0.125
    assert decay(-5, 10) == 1  # evidence is never worth more than new


def test_no_evidence_gives_the_neutral_score_whatever_the_tier():
    scores = compute_trust_scores([], {"a": "platinum", "b": "bronze"}, POLICY, AS_OF)
    assert [(s.provider_id, s.score) for s in scores] == [("a", 0.5), ("b", 0.5)]
    assert all(c.score == 0.5 for s in scores for c in s.components.values())


def test_formula_against_hand_computed_value(make):
    move = {"move_id": "m", "shard_id": "s", "from_provider": "z"}
    make("migration_completed", AS_OF - 10 * DAY, to_provider="a", **move)  # weight 0.5
    make("migration_completed", AS_OF, to_provider="a", **move)  # weight 1
    make("migration_rolled_back", AS_OF - 20 * DAY, to_provider="a", **move)  # weight 0.25
    make("run_failed", AS_OF, providers=["a"], job="j")  # weight 1, a failure
    make(
        "audit_attestation",
        AS_OF,
        auditor="x",
        provider="a",
        period={"start": "2026-11-01", "end": "2026-11-18"},  # 10 days before: weight 0.5
        score=0.9,
        findings=[],
        signature="s",
        format="skyshard-audit/v1",
    )
    upheld = make("dispute_opened", AS_OF - 12 * DAY, provider="a", reason="lost data")
    make("dispute_resolved", AS_OF - 10 * DAY, dispute=upheld.seq, outcome="upheld", note="")
    still_open = make("dispute_opened", AS_OF - DAY, provider="a", reason="late")
    make("migration_completed", AS_OF + DAY, to_provider="a", **move)  # after as_of: ignored
    make("migration_completed", AS_OF, to_provider="unknown", **move)  # not a provider: ignored
    incidents = pl.DataFrame(
        {
            "provider_id": ["a", "a", "a"],
            "day": [date(2026, 11, 28), date(2026, 11, 18), date(2026, 11, 29)],
            "availability": [1.0, 0.97, 0.0],  # 0.97 maps to 0.4; the 29th is after as_of
        }
    )
    [score] = compute_trust_scores(make.entries, {"a": "gold"}, POLICY, AS_OF, incidents)

    # Each component: decayed weights w, observed value v, pulled toward neutral 0.5 with
    # prior strength 2: (sum(w) * v + 2 * 0.5) / (sum(w) + 2).
    migrations = (1.5 + 1) / (2.75 + 2)  # successes 0.5 + 1 of total weight 2.75
    availability = (1.2 / 7 + 1) / (1.5 / 7 + 2)  # days weigh 1/7: 1*1.0 + 0.5*0.4 over 1.5
    audits = (0.5 * 0.9 + 1) / (0.5 + 2)
    disputes = (0 + 1) / (0.5 + 2)  # one upheld dispute, weight 0.5, value 0
    total = 2.75 + 1.5 / 7 + 0.5 + 0.5
    tier = (total * 0.8 + 1) / (total + 2)  # gold = 0.8, counted as much as the evidence
    blended = 0.30 * migrations + 0.25 * availability + 0.20 * audits
    blended += 0.10 * disputes + 0.15 * tier
    expected = blended * 0.8  # one dispute still open

    assert score.score == pytest.approx(expected, abs=1e-6)
    assert score.score == pytest.approx(0.44085, abs=1e-6)
    assert score.open_disputes == (still_open.seq,)
    parts = score.components
    assert parts["migrations"].value == pytest.approx(1.5 / 2.75)
    assert parts["migrations"].evidence == pytest.approx(2.75)
    assert parts["availability"].score == pytest.approx(availability)
    assert parts["audits"].score == pytest.approx(audits)
    assert parts["disputes"].score == pytest.approx(disputes)
    assert parts["tier"].score == pytest.approx(tier)
    breakdown = score.breakdown()
    assert breakdown["open_disputes"] == [still_open.seq]
    assert set(breakdown["components"]) == {
        "migrations",
        "availability",
        "audits",
        "disputes",
        "tier",
    }


def test_same_inputs_same_scores(make):
    make(
        "migration_completed",
        AS_OF - 3 * DAY,
        move_id="m",
        shard_id="s",
        from_provider="b",
        to_provider="a",
    )
    first = compute_trust_scores(make.entries, {"a": "silver", "b": "gold"}, POLICY, AS_OF)
    second = compute_trust_scores(list(make.entries), {"b": "gold", "a": "silver"}, POLICY, AS_OF)
    assert first == second


def _score(ledger, provider: str, at: datetime) -> float:
    tiers = {"a": "silver", "b": "silver"}
    scores = compute_trust_scores(ledger.entries(), tiers, POLICY, at)
    return next(s.score for s in scores if s.provider_id == provider)


def test_open_dispute_lowers_trust_until_resolved(ledger):
    record_migration(
        "migration_completed", "run-1", migration_payload("m1", "s1", "b", "a", 10), ledger=ledger
    )
    later = datetime.now(UTC) + timedelta(hours=1)
    before = _score(ledger, "a", later)
    opened = record_dispute_opened("a", "shard lost writes", "alice", ledger=ledger)
    during = _score(ledger, "a", later)
    assert during == pytest.approx(before * 0.8, abs=1e-6)
    assert _score(ledger, "b", later) == 0.5  # other providers untouched
    record_dispute_resolved(opened.seq, "dismissed", "alice", "not their fault", ledger=ledger)
    assert _score(ledger, "a", later) == before

    second = record_dispute_opened("a", "again", "alice", ledger=ledger)
    record_dispute_resolved(second.seq, "upheld", "alice", ledger=ledger)
    assert _score(ledger, "a", later) < before  # an upheld dispute counts against it
    assert ledger.verify().ok


def test_dispute_errors_name_the_problem(ledger):
    opened = record_dispute_opened("a", "x", "alice", ledger=ledger)
    with pytest.raises(DisputeError, match="dispute 99: no dispute_opened entry has seq 99"):
        record_dispute_resolved(99, "dismissed", "alice", ledger=ledger)
    with pytest.raises(DisputeError, match="outcome 'maybe'"):
        record_dispute_resolved(opened.seq, "maybe", "alice", ledger=ledger)
    record_dispute_resolved(opened.seq, "dismissed", "alice", ledger=ledger)
    with pytest.raises(DisputeError, match=f"already resolved by entry {opened.seq + 1}"):
        record_dispute_resolved(opened.seq, "upheld", "alice", ledger=ledger)
    with pytest.raises(DisputeError, match="reason must not be empty"):
        record_dispute_opened("a", "  ", "alice", ledger=ledger)
    assert len(list(ledger.entries())) == 2


def test_recorded_scores_carry_their_entry_seq(ledger):
    ledger.append("run_started", "r", "dagster", {})
    scores = compute_trust_scores(ledger.entries(), {"a": "gold", "b": "bronze"}, POLICY, AS_OF)
    table = record_trust_scores(ledger, scores, POLICY, AS_OF, "run-9")
    entries = {e.seq: e for e in ledger.entries("trust_score")}
    assert table["ledger_seq"].to_list() == [1, 2]
    for provider, score, components, seq in table.select(
        "provider_id", "score", "components", "ledger_seq"
    ).iter_rows():
        payload = entries[seq].payload
        assert (payload["provider"], payload["score"]) == (provider, score)
        assert json.loads(components)["components"] == payload["components"]
        assert entries[seq].run_id == "run-9"
    assert ledger.verify().ok


def test_failed_migration_runs_are_not_counted_twice(make):
    move = {"move_id": "m", "shard_id": "s", "from_provider": "z"}
    make("migration_rolled_back", AS_OF, to_provider="a", **move)
    alone = compute_trust_scores(make.entries, {"a": "silver", "z": "silver"}, POLICY, AS_OF)
    # The job's run fails too; its run_failed names both providers but must change nothing.
    make("run_failed", AS_OF, providers=["a", "z"], job="migrate_shard")
    both = compute_trust_scores(make.entries, {"a": "silver", "z": "silver"}, POLICY, AS_OF)
    assert [s.score for s in both] == [s.score for s in alone]
    assert both[0].score < 0.5  # the rolled-back move still counts against the target
