"""Policy contracts: pure, deterministic decisions from `policy.yaml` (where data may go, who may
do what, whether a price or a spend is within the payment terms), each stamped with the hash of
the policy that made it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from skyshard.config.policy import PolicyFile
from skyshard.ledger.entry import canonical_json

PLACEMENT = "placement"
OPERATOR_ACTION = "operator_action"
PRICE_CAP = "price_cap"
MONTHLY_BUDGET = "monthly_budget"


def policy_hash(policy: PolicyFile) -> str:
    """SHA-256 (hex) of the canonical JSON of the whole policy, defaults included."""
    return hashlib.sha256(canonical_json(policy.model_dump(mode="json"))).hexdigest()


@dataclass(frozen=True)
class Decision:
    """One contract evaluation: what was asked, the answer, why, and under which policy."""

    kind: str
    allowed: bool
    subject: Mapping[str, Any]
    reasons: tuple[str, ...]
    policy_hash: str

    def payload(self) -> dict[str, Any]:
        """The body of a policy_decision ledger entry."""
        return {
            "kind": self.kind,
            "allowed": self.allowed,
            "subject": dict(self.subject),
            "reasons": list(self.reasons),
            "policy_hash": self.policy_hash,
        }


def _decide(
    policy: PolicyFile, kind: str, subject: Mapping[str, Any], refusals: list[str], ok: str
) -> Decision:
    return Decision(kind, not refusals, dict(subject), tuple(refusals or [ok]), policy_hash(policy))


def may_place(
    policy: PolicyFile, data_class: str, provider_id: str, region: str, trust: float
) -> Decision:
    """May data of `data_class` go to `provider_id` in `region` when the provider's trust is
    `trust`? A class without a rule in `data_classes` may go anywhere."""
    rule = policy.data_classes.get(data_class)  # type: ignore[call-overload]
    refusals = []
    if rule is not None:
        if trust < rule.min_trust:
            refusals.append(
                f"trust {trust:.4f} of {provider_id} is below data_classes.{data_class}.min_trust "
                f"{rule.min_trust}"
            )
        if rule.allowed_providers is not None and provider_id not in rule.allowed_providers:
            refusals.append(
                f"provider {provider_id} is not in data_classes.{data_class}.allowed_providers "
                f"{rule.allowed_providers}"
            )
        if rule.allowed_regions is not None and region not in rule.allowed_regions:
            refusals.append(
                f"region {region} is not in data_classes.{data_class}.allowed_regions "
                f"{rule.allowed_regions}"
            )
    subject = {
        "data_class": data_class,
        "provider": provider_id,
        "region": region,
        "trust": trust,
    }
    ok = f"no rule for data class {data_class}" if rule is None else "meets the data class rule"
    return _decide(policy, PLACEMENT, subject, refusals, ok)


def may_act(policy: PolicyFile, operator: str, action: str, provider_id: str) -> Decision:
    """May `operator` perform `action` on `provider_id`? Only an explicit grant allows it."""
    subject = {"operator": operator, "action": action, "provider": provider_id}
    for index, entry in enumerate(policy.operators):
        if entry.id != operator:
            continue
        for number, grant in enumerate(entry.grants):
            if action in grant.actions and fnmatchcase(provider_id, grant.provider):
                ok = f"granted by operators[{index}].grants[{number}]"
                return _decide(policy, OPERATOR_ACTION, subject, [], ok)
    refusal = f"no grant lets operator {operator} {action} on provider {provider_id}"
    return _decide(policy, OPERATOR_ACTION, subject, [refusal], "")


def within_price_cap(policy: PolicyFile, provider_id: str, price_per_cpu_hour: float) -> Decision:
    """Is `price_per_cpu_hour` at most the provider's `price_cap_per_cpu_hour` (if it has one)?"""
    terms = policy.payment.get(provider_id)
    cap = terms.price_cap_per_cpu_hour if terms else None
    subject = {"provider": provider_id, "price_per_cpu_hour": price_per_cpu_hour, "cap": cap}
    refusals = []
    if cap is not None and price_per_cpu_hour > cap:
        refusals.append(
            f"price {price_per_cpu_hour} per cpu-hour exceeds "
            f"payment.{provider_id}.price_cap_per_cpu_hour {cap}"
        )
    ok = "no price cap" if cap is None else "within the price cap"
    return _decide(policy, PRICE_CAP, subject, refusals, ok)


def within_budget(
    policy: PolicyFile, provider_id: str, spent_this_month: float, additional: float = 0.0
) -> Decision:
    """Does spending `additional` on top of `spent_this_month` stay within the monthly budget?"""
    terms = policy.payment.get(provider_id)
    budget = terms.monthly_budget if terms else None
    total = spent_this_month + additional
    subject = {
        "provider": provider_id,
        "spent_this_month": spent_this_month,
        "additional": additional,
        "budget": budget,
    }
    refusals = []
    if budget is not None and total > budget:
        refusals.append(
            f"spend {total:.2f} this month exceeds payment.{provider_id}.monthly_budget {budget}"
        )
    ok = "no monthly budget" if budget is None else "within the monthly budget"
    return _decide(policy, MONTHLY_BUDGET, subject, refusals, ok)


def access_grants(policy: PolicyFile) -> dict[str, list[tuple[str, list[str]]]]:
    """The operators' grants in the shape `AccessPolicy.from_mapping` takes."""
    return {
        operator.id: [(grant.provider, list(grant.actions)) for grant in operator.grants]
        for operator in policy.operators
    }
