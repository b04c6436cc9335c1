"""Schema of `policy.yaml`: forecasting and planning knobs, access rules and payment terms."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from skyshard.config.base import Fraction, Identifier, NonNegative, StrictModel
from skyshard.config.providers import DataClass

Action = Literal[
    "read_telemetry",
    "start_shard",
    "stop_shard",
    "freeze_shard",
    "send_migration",
    "receive_migration",
    "push_routing",
    "sync_ledger",
]


SlowModel = Literal["autoets", "mstl", "autotheta", "prophet"]


class ForecastPolicy(StrictModel):
    """The forecast settings: policy.yaml's `forecast:` section and the one settings object
    `skyshard.forecast.forecast_series` takes (docs/forecasting.md)."""

    horizon_hours: int = Field(default=24, ge=1, le=24 * 14)
    interval: float = Field(default=0.9, gt=0, lt=1)
    # Rolling origins of the backtest every candidate is chosen on; the later half also
    # measures the choice out of sample.
    backtest_cutoffs: int = Field(default=7, ge=1, le=20)
    # Slow candidates, backtested series by series (riskiest first) while the budget lasts;
    # every series is backtested with every cheap candidate regardless.
    slow_models: tuple[SlowModel, ...] = ("autotheta", "mstl", "prophet")
    slow_budget_seconds: float = Field(default=30.0, ge=0)
    # A forecast upper bound above this share of the series' capacity makes it risky.
    capacity_share: float = Field(default=0.8, gt=0, le=1)
    # Level shifts (docs/forecasting.md "Level shifts"): a cheap candidate whose residuals
    # over the last this many hours all lie beyond the series' in-sample band at `interval`
    # on one side is re-levelled by their median; 0 (the default) turns it off. Fewer hours
    # follow a shift sooner but take bursts for one; 6 detects the synthetic sky's steps
    # with few false alarms, yet in the policy backtest it added moves and did not lower cost
    # overall (bench/RESULTS.md "Level shifts, short histories"), so it is opt-in.
    level_shift_hours: int = Field(default=0, ge=0, le=24)
    # The global candidate `global_gbm` (docs/forecasting.md "Candidates"): one LightGBM
    # model across the series at each origin. On: it lowered the held-out median MASE on
    # Bitbrains and every simulator seed and keeps the cycle budget, but it adds seconds to
    # every call (bench/RESULTS.md "Global model").
    global_model: bool = True

    @model_validator(mode="after")
    def _shift_within_horizon(self) -> ForecastPolicy:
        # The shift is judged against the forecast made that many hours ago, over its horizon.
        if self.level_shift_hours > self.horizon_hours:
            raise ValueError(
                f"level_shift_hours {self.level_shift_hours} is more than horizon_hours "
                f"{self.horizon_hours}"
            )
        return self


class AutoApproval(StrictModel):
    enabled: bool = False
    min_saving_per_day: NonNegative = 5.0
    max_risk: Fraction = 0.2


class PlanningPolicy(StrictModel):
    max_moves_per_cycle: int = Field(default=10, ge=0)
    min_saving_per_day: NonNegative = 1.0
    hysteresis_cycles: int = Field(default=3, ge=0)
    downtime_cost_per_second: NonNegative = 0.01
    # What a relief move may cost is judged on the overload its leaving removes, with the
    # forecast spread scaled by this (1: the full interval; 0: point forecasts only, the
    # overload the move certainly removes; see bench/RESULTS.md for the trade-off). A host
    # over capacity at the last observed hour is relieved at the full spread regardless.
    relief_spread: Fraction = 1.0
    # Judge overload on each forecast's measured residual spread (`yhat_sd`) instead of its
    # upper bound read as a normal tail (off: helps the synthetic skies, hurts Bitbrains; see
    # bench/RESULTS.md "Measured residual spread").
    measured_spread: bool = False
    # Price each shard's bursts (hours far above its usual use, measured on its history) in
    # the overload expectation, so a move pays for the bursts it risks beside others (see
    # docs/planning.md "Bursts"; off: the forecast spread alone).
    burst_risk: bool = True
    # Do not relieve a host whose current shards and other tenants stayed within its capacity
    # every hour of the last 14 days (see docs/planning.md "Held hosts").
    hold_hosts_with_room: bool = False
    auto_approve: AutoApproval = Field(default_factory=AutoApproval)


class DataClassRule(StrictModel):
    """Where data of one class may go."""

    min_trust: Fraction = 0.0
    allowed_providers: list[Identifier] | None = None
    allowed_regions: list[str] | None = None


class Grant(StrictModel):
    """Actions an operator may perform on providers matching `provider` ('*' for all)."""

    provider: Identifier | Literal["*"]
    actions: list[Action] = Field(min_length=1)


class Operator(StrictModel):
    id: Identifier
    grants: list[Grant] = Field(default_factory=list)


class PaymentTerms(StrictModel):
    """What skyshard may spend at one provider and how it settles."""

    price_cap_per_cpu_hour: NonNegative | None = None
    monthly_budget: NonNegative | None = None
    settle_per_shard_hour: NonNegative = 0
    settle_per_gb_transferred: NonNegative = 0


class Auditor(StrictModel):
    """An auditor whose signed attestations `skyshard trust import-audit` accepts."""

    id: Identifier
    public_key: str = Field(description="Ed25519 public key, base64 of the 32 raw bytes.")


class LedgerCosigner(StrictModel):
    """A provider's ledger replica whose cosignatures count toward the quorum. Its key is
    pinned here: a replica presenting another key is refused."""

    name: Identifier
    vkey: str = Field(description="C2SP cosignature/v1 verifier key: name+keyid+base64.")
    replica: str = Field(
        default="",
        description="Where `skyshard ledger sync` pushes: a folder, or "
        "ssh://user@host:port/path with the host key pinned in host_key.",
    )
    host_key: str = Field(default="", description="OpenSSH public host key of an ssh replica.")
    client_key: str = Field(default="", description="Ed25519 private key file for an ssh replica.")
    python: str = Field(default="python3", description="Python on an ssh replica's host.")


class LedgerPolicy(StrictModel):
    cosigners: list[LedgerCosigner] = Field(default_factory=list)
    quorum: int = Field(
        default=0, ge=0, description="How many cosigners must have cosigned the latest checkpoint."
    )
    sync_operator: Identifier = Field(
        default="broker", description="The operator whose `sync_ledger` grant ssh pushes use."
    )

    @model_validator(mode="after")
    def _quorum_reachable(self) -> LedgerPolicy:
        if self.quorum > len(self.cosigners):
            raise ValueError(
                f"quorum {self.quorum} is more than the {len(self.cosigners)} cosigners listed"
            )
        return self


class TrustPolicy(StrictModel):
    neutral_score: Fraction = 0.5
    half_life_days: float = Field(default=30, gt=0)


class PlacementRule(BaseModel):
    """One item of `placement_rules`: `rule` names a placement constraint family; the other
    keys are the fields of that family's rule (docs/planning.md). The family validates them,
    so a new family needs no schema here."""

    model_config = ConfigDict(extra="allow", frozen=True)

    rule: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")

    def fields(self) -> dict[str, object]:
        return dict(self.model_extra or {})


class PolicyFile(StrictModel):
    """Top level of `policy.yaml`."""

    forecast: ForecastPolicy = Field(default_factory=ForecastPolicy)
    planning: PlanningPolicy = Field(default_factory=PlanningPolicy)
    data_classes: dict[DataClass, DataClassRule] = Field(default_factory=dict)
    operators: list[Operator] = Field(default_factory=list)
    payment: dict[Identifier, PaymentTerms] = Field(default_factory=dict)
    placement_rules: list[PlacementRule] = Field(default_factory=list)
    auditors: list[Auditor] = Field(default_factory=list)
    trust: TrustPolicy = Field(default_factory=TrustPolicy)
    ledger: LedgerPolicy = Field(default_factory=LedgerPolicy)
