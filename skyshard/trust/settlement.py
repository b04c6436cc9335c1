"""Settlement: what skyshard owes each provider per calendar month (shard-hours and GiB
transferred, from the ledger's migrations) under the policy's payment terms, with overruns of
price caps and monthly budgets flagged."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl

from skyshard.config.policy import PolicyFile
from skyshard.ledger import Entry
from skyshard.ledger.merkle import leaf_hash
from skyshard.trust.contracts import policy_hash, within_budget, within_price_cap
from skyshard.trust.events import EntryType
from skyshard.trust.scores import parse_ts

GIB = 1 << 30
DECIMALS = 6
SETTLEMENT_TABLE = "trust.settlement"
SETTLEMENT_SCHEMA = {
    "provider_id": pl.String,
    "month": pl.Date,
    "shard_hours": pl.Float64,
    "gib_transferred": pl.Float64,
    "owed": pl.Float64,
    "monthly_budget": pl.Float64,
    "budget_used": pl.Float64,
    "over_budget": pl.Boolean,
    "price_per_cpu_hour": pl.Float64,
    "price_cap_per_cpu_hour": pl.Float64,
    "over_price_cap": pl.Boolean,
    "policy_hash": pl.String,
    "computed_at": pl.Datetime("us"),
    "ledger_seq": pl.Int64,
    "leaf_hash": pl.String,
}
_TRANSFERS = (EntryType.MIGRATION_COMPLETED, EntryType.MIGRATION_ROLLED_BACK)


@dataclass(frozen=True)
class Stay:
    """Shard `shard_id` ran on `provider_id` from `start` to `end` (UTC)."""

    shard_id: str
    provider_id: str
    start: datetime
    end: datetime


def placement_history(
    initial: Mapping[str, str], entries: Iterable[Entry], since: datetime, until: datetime
) -> list[Stay]:
    """Where each shard ran within [since, until]: `initial` (shard → provider) is where shards
    were before the first migration; each migration_completed entry moves its shard to its
    `to_provider`."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    current = dict(initial)
    arrived = dict.fromkeys(initial, since)
    stays = []
    for entry in entries:
        if entry.type != EntryType.MIGRATION_COMPLETED:
            continue
        moment = parse_ts(entry.ts)
        if moment > until:
            continue
        shard, target = entry.payload["shard_id"], entry.payload["to_provider"]
        moment = max(moment, since)
        if shard in current and moment > arrived[shard]:
            stays.append(Stay(shard, current[shard], arrived[shard], moment))
        current[shard], arrived[shard] = target, moment
    stays += [Stay(s, p, arrived[s], until) for s, p in current.items() if until > arrived[s]]
    return stays


def month_start(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _hours_per_month(stay: Stay) -> Iterable[tuple[date, float]]:
    """The stay's hours split at calendar month boundaries (UTC)."""
    start = stay.start
    while start < stay.end:
        month = month_start(start)
        boundary = datetime.combine(_next_month(month), datetime.min.time(), tzinfo=UTC)
        end = min(stay.end, boundary)
        yield month, (end - start).total_seconds() / 3600
        start = end


def months_between(since: datetime, until: datetime) -> list[date]:
    months, month = [], month_start(since)
    while month <= month_start(until):
        months.append(month)
        month = _next_month(month)
    return months


def settlement_since(entries: Iterable[Entry], until: datetime) -> datetime:
    """Where settlement starts: the month of the ledger's first entry (or of `until`)."""
    first = next(iter(entries), None)
    moment = parse_ts(first.ts) if first is not None else until.astimezone(UTC)
    return datetime.combine(month_start(moment), datetime.min.time(), tzinfo=UTC)


def settle(
    policy: PolicyFile,
    providers: Iterable[str],
    stays: Iterable[Stay],
    entries: Iterable[Entry],
    since: datetime,
    until: datetime,
    prices: Mapping[tuple[str, date], float] | None = None,
    computed_at: datetime | None = None,
) -> pl.DataFrame:
    """One row per provider and calendar month in [since, until]: shard-hours × settle_per_shard
    _hour plus GiB received by migrations (completed or rolled back) × settle_per_gb_transferred,
    with the month's mean price per cpu-hour (`prices`) checked against the price cap. Every
    row carries the seq and leaf hash of the last ledger entry it derives from."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    hours: dict[tuple[str, date], float] = defaultdict(float)
    for stay in stays:
        for month, amount in _hours_per_month(stay):
            hours[stay.provider_id, month] += amount
    gib: dict[tuple[str, date], float] = defaultdict(float)
    for entry in entries:
        if entry.type in _TRANSFERS and since <= parse_ts(entry.ts) <= until:
            key = (entry.payload["to_provider"], month_start(parse_ts(entry.ts)))
            gib[key] += entry.payload.get("bytes_sent", 0) / GIB
    prices = prices or {}
    digest = policy_hash(policy)
    entries = list(entries)
    last = entries[-1] if entries else None
    derived_from = {
        "ledger_seq": last.seq if last else None,
        "leaf_hash": leaf_hash(last.line).hex() if last else None,
    }
    at = (computed_at or until).astimezone(UTC).replace(tzinfo=None)
    rows = []
    for provider_id in sorted(set(providers)):
        terms = policy.payment.get(provider_id)
        for month in months_between(since, until):
            key = (provider_id, month)
            owed = 0.0
            if terms is not None:
                owed = (
                    hours[key] * terms.settle_per_shard_hour
                    + gib[key] * terms.settle_per_gb_transferred
                )
            budget = terms.monthly_budget if terms else None
            price = prices.get(key)
            rows.append(
                {
                    "provider_id": provider_id,
                    "month": month,
                    "shard_hours": round(hours[key], DECIMALS),
                    "gib_transferred": round(gib[key], DECIMALS),
                    "owed": round(owed, DECIMALS),
                    "monthly_budget": budget,
                    "budget_used": round(owed / budget, DECIMALS) if budget else None,
                    "over_budget": not within_budget(policy, provider_id, owed).allowed,
                    "price_per_cpu_hour": price,
                    "price_cap_per_cpu_hour": terms.price_cap_per_cpu_hour if terms else None,
                    "over_price_cap": price is not None
                    and not within_price_cap(policy, provider_id, price).allowed,
                    "policy_hash": digest,
                    "computed_at": at,
                    **derived_from,
                }
            )
    return pl.DataFrame(rows, schema=SETTLEMENT_SCHEMA)
