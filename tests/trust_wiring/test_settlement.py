"""Settlement against hand-computed shard-hours, GiB and amounts, with overruns flagged."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from skyshard.config.policy import PaymentTerms, PolicyFile
from skyshard.trust.contracts import policy_hash
from skyshard.trust.settlement import (
    GIB,
    Stay,
    months_between,
    placement_history,
    settle,
    settlement_since,
)

SINCE = datetime(2026, 10, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 1, 12, tzinfo=UTC)
OCT, NOV = date(2026, 10, 1), date(2026, 11, 1)
POLICY = PolicyFile(
    payment={
        "p1": PaymentTerms(
            settle_per_shard_hour=0.5,
            settle_per_gb_transferred=2.0,
            monthly_budget=100,
            price_cap_per_cpu_hour=0.1,
        )
    }
)


def _move(make, at, shard, source, target, gib, type="migration_completed"):
    make(
        type,
        at,
        move_id=f"{shard}-{at:%d}",
        shard_id=shard,
        from_provider=source,
        to_provider=target,
        bytes_sent=int(gib * GIB),
    )


@pytest.fixture
def history(make):
    _move(make, datetime(2026, 10, 11, tzinfo=UTC), "s1", "p1", "p2", 3)
    _move(make, datetime(2026, 10, 31, tzinfo=UTC), "s2", "p2", "p1", 1)
    _move(
        make, datetime(2026, 11, 1, 6, tzinfo=UTC), "s3", "p2", "p1", 0.5, "migration_rolled_back"
    )
    _move(make, datetime(2026, 11, 2, tzinfo=UTC), "s1", "p2", "p1", 9)  # after UNTIL
    return make.entries


def test_placement_history_replays_completed_migrations(history):
    stays = placement_history({"s1": "p1", "s2": "p2"}, history, SINCE, UNTIL)
    assert sorted(stays, key=lambda s: (s.shard_id, s.start)) == [
        Stay("s1", "p1", SINCE, datetime(2026, 10, 11, tzinfo=UTC)),
        Stay("s1", "p2", datetime(2026, 10, 11, tzinfo=UTC), UNTIL),
        Stay("s2", "p2", SINCE, datetime(2026, 10, 31, tzinfo=UTC)),
        Stay("s2", "p1", datetime(2026, 10, 31, tzinfo=UTC), UNTIL),
    ]


def test_settlement_against_hand_computed_values(history):
    stays = placement_history({"s1": "p1", "s2": "p2"}, history, SINCE, UNTIL)
    prices = {("p1", OCT): 0.12, ("p1", NOV): 0.08}
    table = settle(POLICY, ["p2", "p1"], stays, history, SINCE, UNTIL, prices)
    rows = {(r["provider_id"], r["month"]): r for r in table.to_dicts()}
    assert list(rows) == [("p1", OCT), ("p1", NOV), ("p2", OCT), ("p2", NOV)]

    p1_oct = rows["p1", OCT]
    # s1 on p1 for Oct 1-11 (240 h), s2 on p1 from Oct 31 (24 h); 1 GiB received on Oct 31
    assert p1_oct["shard_hours"] == 240 + 24
    assert p1_oct["gib_transferred"] == 1
    assert p1_oct["owed"] == 264 * 0.5 + 1 * 2.0  # 134 > budget 100
    assert (p1_oct["over_budget"], p1_oct["budget_used"]) == (True, 1.34)
    assert (p1_oct["over_price_cap"], p1_oct["price_cap_per_cpu_hour"]) == (True, 0.1)

    p1_nov = rows["p1", NOV]
    # s2 on p1 for 12 h; a rolled-back move still transferred 0.5 GiB to p1
    assert (p1_nov["shard_hours"], p1_nov["gib_transferred"]) == (12, 0.5)
    assert p1_nov["owed"] == 12 * 0.5 + 0.5 * 2.0
    assert (p1_nov["over_budget"], p1_nov["over_price_cap"]) == (False, False)

    p2_oct = rows["p2", OCT]
    # s1 on p2 Oct 11-31 (504 h) and s2 on p2 Oct 1-31 (720 h); no payment terms: owes 0
    assert (p2_oct["shard_hours"], p2_oct["gib_transferred"]) == (504 + 720, 3)
    assert (p2_oct["owed"], p2_oct["over_budget"], p2_oct["monthly_budget"]) == (0, False, None)
    assert rows["p2", NOV]["shard_hours"] == 12
    assert set(table["policy_hash"]) == {policy_hash(POLICY)}


def test_settlement_is_deterministic(history):
    stays = placement_history({"s1": "p1"}, history, SINCE, UNTIL)
    first = settle(POLICY, ["p1", "p2"], stays, history, SINCE, UNTIL)
    second = settle(POLICY, ["p2", "p1"], list(reversed(stays)), history, SINCE, UNTIL)
    assert first.equals(second)


def test_settlement_starts_in_the_month_of_the_first_entry(history):
    assert settlement_since(history, UNTIL) == datetime(2026, 10, 1, tzinfo=UTC)
    assert settlement_since([], UNTIL) == datetime(2026, 11, 1, tzinfo=UTC)
    assert months_between(datetime(2025, 11, 5, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)) == [
        date(2025, 11, 1),
        date(2025, 12, 1),
        date(2026, 1, 1),
        date(2026, 2, 1),
    ]
