"""Policy contracts: pure and deterministic decisions stamped with the policy hash; decisions
and access denials land in the ledger."""

from __future__ import annotations

from functools import partial

import pytest

from skyshard.config.policy import (
    DataClassRule,
    Grant,
    Operator,
    PaymentTerms,
    PolicyFile,
    TrustPolicy,
)
from skyshard.transport.access import AccessDenied, AccessPolicy
from skyshard.trust.contracts import (
    access_grants,
    may_act,
    may_place,
    policy_hash,
    within_budget,
    within_price_cap,
)
from skyshard.trust.events import record_access_denied, record_policy_decisions

POLICY = PolicyFile(
    data_classes={
        "confidential": DataClassRule(min_trust=0.6),
        "restricted": DataClassRule(
            min_trust=0.8, allowed_providers=["fra-colo"], allowed_regions=["eu-central"]
        ),
    },
    operators=[
        Operator(id="oncall", grants=[Grant(provider="*", actions=["read_telemetry"])]),
        Operator(id="broker", grants=[Grant(provider="fra-colo", actions=["send_migration"])]),
    ],
    payment={"aws": PaymentTerms(price_cap_per_cpu_hour=0.1, monthly_budget=1000)},
)


def test_policy_hash_is_stable_and_changes_with_the_policy():
    same = PolicyFile.model_validate(POLICY.model_dump())
    assert policy_hash(same) == policy_hash(POLICY)
    assert len(policy_hash(POLICY)) == 64
    changed = POLICY.model_copy(update={"trust": TrustPolicy(neutral_score=0.4)})
    assert policy_hash(changed) != policy_hash(POLICY)
    decision = may_place(POLICY, "confidential", "aws", "us-east-1", 0.7)
    assert decision.policy_hash == policy_hash(POLICY)
    assert may_place(changed, "confidential", "aws", "us-east-1", 0.7).policy_hash != (
        decision.policy_hash
    )


def test_same_policy_same_decisions():
    questions = [
        partial(may_place, data_class="restricted", provider_id="fra-colo", region="x", trust=0.9),
        partial(may_act, operator="broker", action="send_migration", provider_id="aws"),
        partial(within_price_cap, provider_id="aws", price_per_cpu_hour=0.2),
        partial(within_budget, provider_id="aws", spent_this_month=900, additional=50),
    ]
    first = [ask(POLICY).payload() for ask in questions]
    again = [ask(PolicyFile.model_validate(POLICY.model_dump())).payload() for ask in questions]
    assert first == again


@pytest.mark.parametrize(
    ("data_class", "provider", "region", "trust", "allowed", "reason"),
    [
        ("public", "aws", "us-east-1", 0.0, True, "no rule for data class public"),
        ("confidential", "aws", "us-east-1", 0.6, True, "meets the data class rule"),
        ("confidential", "aws", "us-east-1", 0.59, False, "below data_classes.confidential"),
        ("restricted", "aws", "eu-central", 0.9, False, "provider aws is not in"),
        ("restricted", "fra-colo", "us-east-1", 0.9, False, "region us-east-1 is not in"),
        ("restricted", "fra-colo", "eu-central", 0.9, True, "meets the data class rule"),
    ],
)
def test_may_place(data_class, provider, region, trust, allowed, reason):
    decision = may_place(POLICY, data_class, provider, region, trust)
    assert decision.allowed is allowed
    assert reason in " ".join(decision.reasons)
    assert decision.subject == {
        "data_class": data_class,
        "provider": provider,
        "region": region,
        "trust": trust,
    }


def test_may_act_needs_an_explicit_grant():
    assert may_act(POLICY, "oncall", "read_telemetry", "anything").allowed
    granted = may_act(POLICY, "broker", "send_migration", "fra-colo")
    assert granted.allowed and granted.reasons == ("granted by operators[1].grants[0]",)
    assert not may_act(POLICY, "broker", "send_migration", "aws").allowed
    assert not may_act(POLICY, "oncall", "stop_shard", "aws").allowed
    refused = may_act(POLICY, "mallory", "read_telemetry", "aws")
    assert refused.reasons == ("no grant lets operator mallory read_telemetry on provider aws",)


def test_payment_terms():
    assert within_price_cap(POLICY, "aws", 0.1).allowed
    over = within_price_cap(POLICY, "aws", 0.11)
    assert not over.allowed and "payment.aws.price_cap_per_cpu_hour 0.1" in over.reasons[0]
    assert within_price_cap(POLICY, "fra-colo", 99).reasons == ("no price cap",)
    assert within_budget(POLICY, "aws", 900, 100).allowed
    assert not within_budget(POLICY, "aws", 900, 100.01).allowed
    assert within_budget(POLICY, "fra-colo", 1e9).allowed


def test_decisions_and_denials_are_recorded(ledger):
    decision = may_place(POLICY, "restricted", "aws", "eu-central", 0.9)
    [entry] = record_policy_decisions([decision], "run-1", "policy", ledger)
    assert entry.type == "policy_decision"
    assert entry.payload["policy_hash"] == policy_hash(POLICY)
    assert entry.payload["allowed"] is False

    access = AccessPolicy.from_mapping(
        access_grants(POLICY), on_denied=partial(record_access_denied, ledger=ledger)
    )
    access.check("oncall", "aws", "read_telemetry")
    with pytest.raises(AccessDenied):
        access.check("oncall", "aws", "stop_shard")
    [denied] = ledger.entries("access_denied")
    assert denied.payload == {"operator": "oncall", "provider": "aws", "action": "stop_shard"}
    assert denied.actor == "oncall"
    assert ledger.verify().ok
