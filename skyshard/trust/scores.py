"""Trust scores from the ledger's history: one score per provider in [0, 1] with a component
breakdown, exponentially decayed evidence, and the formula of docs/trust.md."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import polars as pl

from skyshard.config.policy import TrustPolicy
from skyshard.ledger import Entry, Ledger
from skyshard.ledger.merkle import leaf_hash
from skyshard.scoring.trust_inputs import TRUST_SCHEMA, TRUST_TABLE
from skyshard.trust.events import EntryType, record_trust_score_entries

FORMULA = "skyshard-trust/v1"
WEIGHTS = {
    "migrations": 0.30,
    "availability": 0.25,
    "audits": 0.20,
    "disputes": 0.10,
    "tier": 0.15,
}
PRIOR_STRENGTH = 2.0
"""How much decayed evidence it takes to move a component halfway from neutral to observed."""
TIER_VALUES = {"bronze": 0.4, "silver": 0.6, "gold": 0.8, "platinum": 1.0}
AVAILABILITY_FLOOR = 0.95
"""Daily availability at or below this scores 0; 100 % scores 1, linearly in between."""
DAYS_PER_EVIDENCE = 7.0
"""Days of availability that weigh as much as one migration or one audit."""
OPEN_DISPUTE_FACTOR = 0.8
"""Each unresolved dispute multiplies the score by this until it is resolved."""
DECIMALS = 6
MIGRATION_JOB = "migrate_shard"
"""Failed runs of this job are not counted again: the job records the migration's outcome."""
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Component:
    value: float
    evidence: float
    score: float
    weight: float

    def as_dict(self) -> dict[str, float]:
        return {
            "value": round(self.value, DECIMALS),
            "evidence": round(self.evidence, DECIMALS),
            "score": round(self.score, DECIMALS),
            "weight": self.weight,
        }


@dataclass(frozen=True)
class TrustScore:
    provider_id: str
    score: float
    components: dict[str, Component]
    open_disputes: tuple[int, ...]

    def breakdown(self) -> dict[str, Any]:
        return {
            "formula": FORMULA,
            "components": {name: c.as_dict() for name, c in self.components.items()},
            "open_disputes": list(self.open_disputes),
            "open_dispute_factor": OPEN_DISPUTE_FACTOR ** len(self.open_disputes),
        }


@dataclass
class _Evidence:
    """Decayed (weight, value) observations per component for one provider."""

    observations: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    open_disputes: dict[int, None] = field(default_factory=dict)

    def add(self, component: str, weight: float, value: float) -> None:
        self.observations[component].append((weight, value))


def decay(age_days: float, half_life_days: float) -> float:
    """Weight of evidence `age_days` old: halves every `half_life_days`."""
    return 0.5 ** (max(0.0, age_days) / half_life_days)


def _age_days(as_of: datetime, moment: datetime) -> float:
    return (as_of - moment).total_seconds() / _SECONDS_PER_DAY


def parse_ts(ts: str) -> datetime:
    return datetime.fromisoformat(ts).astimezone(UTC)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _named(payload: Mapping[str, Any], *keys: str) -> list[str]:
    names = []
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str):
            names.append(value)
        elif isinstance(value, list):
            names += [v for v in value if isinstance(v, str)]
    return names


def _collect(
    entries: Iterable[Entry],
    providers: Iterable[str],
    as_of: datetime,
    half_life: float,
) -> dict[str, _Evidence]:
    evidence = {p: _Evidence() for p in providers}
    opened_by: dict[int, str] = {}
    for entry in entries:
        moment = parse_ts(entry.ts)
        if moment > as_of:
            continue
        weight = decay(_age_days(as_of, moment), half_life)
        payload = entry.payload
        if entry.type == EntryType.MIGRATION_COMPLETED:
            targets, value, component = _named(payload, "to_provider"), 1.0, "migrations"
        elif entry.type == EntryType.MIGRATION_ROLLED_BACK:
            targets, value, component = _named(payload, "to_provider"), 0.0, "migrations"
        elif entry.type == EntryType.RUN_FAILED:
            if payload.get("job") == MIGRATION_JOB:
                continue  # its migration_* entries already name the provider at fault
            targets, value, component = _named(payload, "providers"), 0.0, "migrations"
        elif entry.type == EntryType.AUDIT_ATTESTATION:
            end = date.fromisoformat(payload["period"]["end"])
            weight = decay(_age_days(as_of, _day_start(end)), half_life)
            targets, value, component = _named(payload, "provider"), payload["score"], "audits"
        elif entry.type == EntryType.DISPUTE_OPENED:
            provider = payload["provider"]
            opened_by[entry.seq] = provider
            if provider in evidence:
                evidence[provider].open_disputes[entry.seq] = None
            continue
        elif entry.type == EntryType.DISPUTE_RESOLVED:
            provider = opened_by.get(payload["dispute"], "")
            if provider in evidence:
                evidence[provider].open_disputes.pop(payload["dispute"], None)
            upheld = payload.get("outcome") == "upheld"
            targets, value, component = ([provider] if upheld else []), 0.0, "disputes"
        else:
            continue
        for provider in targets:
            if provider in evidence:
                evidence[provider].add(component, weight, float(value))
    return evidence


def _add_availability(
    evidence: Mapping[str, _Evidence], incidents: pl.DataFrame, as_of: datetime, half_life: float
) -> None:
    for provider_id, day, availability in incidents.select(
        "provider_id", "day", "availability"
    ).iter_rows():
        if provider_id not in evidence or availability is None:
            continue
        start = _day_start(day)
        if start > as_of:
            continue
        value = (float(availability) - AVAILABILITY_FLOOR) / (1 - AVAILABILITY_FLOOR)
        value = min(1.0, max(0.0, value))
        weight = decay(_age_days(as_of, start), half_life) / DAYS_PER_EVIDENCE
        evidence[provider_id].add("availability", weight, value)


def _shrunk(value: float, amount: float, neutral: float) -> float:
    return (amount * value + PRIOR_STRENGTH * neutral) / (amount + PRIOR_STRENGTH)


def _score(provider_id: str, found: _Evidence, tier: str, neutral: float) -> TrustScore:
    components = {}
    total = 0.0
    for name in ("migrations", "availability", "audits", "disputes"):
        observed = found.observations.get(name, [])
        amount = sum(w for w, _ in observed)
        value = sum(w * v for w, v in observed) / amount if amount > 0 else neutral
        components[name] = Component(value, amount, _shrunk(value, amount, neutral), WEIGHTS[name])
        total += amount
    tier_value = TIER_VALUES[tier]
    components["tier"] = Component(
        tier_value, total, _shrunk(tier_value, total, neutral), WEIGHTS["tier"]
    )
    open_disputes = tuple(found.open_disputes)
    if total == 0 and not open_disputes:
        score = neutral
    else:
        blended = sum(c.weight * c.score for c in components.values())
        score = blended * OPEN_DISPUTE_FACTOR ** len(open_disputes)
    score = round(min(1.0, max(0.0, score)), DECIMALS)
    return TrustScore(provider_id, score, components, open_disputes)


def compute_trust_scores(
    entries: Iterable[Entry],
    provider_tiers: Mapping[str, str],
    policy: TrustPolicy,
    as_of: datetime,
    incidents: pl.DataFrame | None = None,
) -> list[TrustScore]:
    """Scores of the providers in `provider_tiers` (id → contract tier) from ledger entries with
    `ts <= as_of` and `incidents` (marts.fct_provider_incidents: provider_id, day,
    availability). Pure: the same inputs always give the same scores."""
    as_of = as_of.astimezone(UTC)
    half_life = policy.half_life_days
    evidence = _collect(entries, provider_tiers, as_of, half_life)
    if incidents is not None:
        _add_availability(evidence, incidents, as_of, half_life)
    return [
        _score(p, evidence[p], provider_tiers[p], policy.neutral_score)
        for p in sorted(provider_tiers)
    ]


def record_trust_scores(
    ledger: Ledger,
    scores: Iterable[TrustScore],
    policy: TrustPolicy,
    as_of: datetime,
    run_id: str = "",
) -> pl.DataFrame:
    """Append one trust_score entry per score (one fsync) and return the `trust.scores` rows,
    each with the seq of its entry."""
    scores = list(scores)
    appended = record_trust_score_entries(ledger, scores, policy, as_of, run_id)
    computed_at = as_of.astimezone(UTC).replace(tzinfo=None)
    return pl.DataFrame(
        {
            "provider_id": [s.provider_id for s in scores],
            "score": [s.score for s in scores],
            "computed_at": [computed_at] * len(scores),
            "components": [json.dumps(s.breakdown(), sort_keys=True) for s in scores],
            "ledger_seq": [e.seq for e in appended],
            "leaf_hash": [leaf_hash(e.line).hex() for e in appended],
        },
        schema=TRUST_SCHEMA,
    )


class TrustInputError(ValueError):
    """A trust score the verified ledger does not vouch for: planning must not use it."""


_BREAKDOWN = ("formula", "components", "open_disputes", "open_dispute_factor")


def check_trust_inputs(rows: pl.DataFrame, ledger: Ledger, neutral_score: float) -> None:
    """Refuse `trust.scores` rows that differ from the trust_score entry (seq and leaf hash)
    they claim to come from, or that claim no entry but are not the neutral score."""
    check_trust_rows(rows, ledger.verified_entries(EntryType.TRUST_SCORE), neutral_score)


def check_trust_rows(rows: pl.DataFrame, entries: Iterable[Entry], neutral_score: float) -> None:
    """`check_trust_inputs` against entries already verified."""
    recorded = {e.seq: e for e in entries if e.type == EntryType.TRUST_SCORE}
    for row in rows.iter_rows(named=True):
        where = f"{TRUST_TABLE} row provider_id={row['provider_id']!r}"
        seq = row["ledger_seq"]
        if seq is None:
            if row["score"] != neutral_score:
                raise TrustInputError(
                    f"{where}: score {row['score']} has no ledger entry and is not the "
                    f"neutral score {neutral_score}"
                )
            continue
        entry = recorded.get(seq)
        if entry is None:
            raise TrustInputError(f"{where}: ledger_seq {seq} is not a trust_score entry")
        if leaf_hash(entry.line).hex() != row["leaf_hash"]:
            raise TrustInputError(
                f"{where}: leaf_hash {row['leaf_hash']} is not that of entry {seq}"
            )
        payload, components = entry.payload, json.loads(row["components"])
        same = payload["provider"] == row["provider_id"] and payload["score"] == row["score"]
        if not same or any(components.get(k) != payload[k] for k in _BREAKDOWN):
            raise TrustInputError(f"{where}: score or components differ from entry {seq}")
