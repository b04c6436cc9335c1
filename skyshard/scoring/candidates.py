"""Scores every shard x host pair with named cost terms (all in currency over the horizon)
plus policy blocks, the explainability table `plan.candidate_scores`.

Terms: `run_cost` forecast price x the mean point forecast of the resources (what is expected to
be used and paid for); `migration_cost`
egress of the state out of the current provider plus expected downtime cost; `latency_cost`
a small charge per ms to every dependency and dependent;
`incident_risk` expected incident downtime cost from the history and open incidents of the
host's provider region, plus spot interruptions in the host's region (Spot Advisor band × horizon ×
SPOT_INTERRUPTION_DOWNTIME_S); `headroom_risk` the expected cost of the overloaded
shard-hours the shard causes on the host (its own and the extra risk it brings to the shards
there), from the forecast quantiles (`skyshard.scoring.overload`);
`trust_cost` a surcharge on run cost that grows as trust falls.

`latency_violation` names a latency limit the candidate would break if the shard's dependencies
and dependents stayed where they are. It is explanation, not a block: the placement solver
enforces the limits jointly, since the other side may move too (`predict_migration`, which
moves one shard alone, treats it as a block).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from skyshard.config.policy import PolicyFile
from skyshard.placement import CandidateTable
from skyshard.scoring.data import PlanningData
from skyshard.scoring.outlook import Outlook
from skyshard.scoring.overload import expected_overload, overload_unit_cost

TERMS: tuple[str, ...] = (
    "run_cost",
    "migration_cost",
    "latency_cost",
    "incident_risk",
    "headroom_risk",
    "trust_cost",
)
GIB = 1024**3
CUTOVER_SECONDS = 2.0
# Pre-copy moves the state while the shard runs; only the pages dirtied since (this share of
# the state) move during the freeze, over a link of this speed.
FINAL_DELTA_FRACTION = 0.05
LINK_GBIT_PER_S = 1.0
LATENCY_COST_PER_MS_DAY = 0.001
INCIDENT_WINDOW_DAYS = 7
OPEN_INCIDENT_DOWNTIME_S = 1800.0
SPOT_INTERRUPTION_DOWNTIME_S = 300.0  # a reclaimed spot instance: notice, restart, catch-up
HOURS_PER_MONTH = 730.0  # Spot Advisor rates are interruptions per instance-month
TRUST_WEIGHT = 0.2
# Two hosts of one provider without a probed intra-provider figure are taken to be this close.
INTRA_PROVIDER_LATENCY_MS = 1.0

SCORE_COLUMNS = (
    "shard_id",
    "host_id",
    "provider_id",
    "region",
    "is_current",
    *TERMS,
    "total",
    "allowed",
    "blocked_by",
    "risk",
    "headroom",
    "latency_p95_max_ms",
    "latency_violation",
    "trust_score",
    "price_mean",
    "price_max",
    "downtime_s",
    "estimated_bytes",
    "expected_downtime_s",
    "spot_interruption_rate",
    "overload_relief",
)


def downtime_seconds(state_gb: pl.Expr | float) -> pl.Expr | float:
    """Expected freeze of a pre-copy migration: the cutover plus the final delta transfer."""
    return CUTOVER_SECONDS + state_gb * FINAL_DELTA_FRACTION * 8 / LINK_GBIT_PER_S


def provider_latency(data: PlanningData) -> pl.DataFrame:
    """p95 ms per unordered provider pair (both orders listed; the worse direction wins), with
    every provider's intra-network figure defaulting to INTRA_PROVIDER_LATENCY_MS."""
    lat = data.latency.select(a="src_provider_id", b="dst_provider_id", p95_ms="p95_ms")
    both = pl.concat([lat, lat.select(a="b", b="a", p95_ms="p95_ms")])
    both = both.group_by("a", "b").agg(pl.col("p95_ms").max())
    providers = data.providers.select(a="provider_id", b="provider_id")
    intra = providers.join(both, on=["a", "b"], how="anti").with_columns(
        p95_ms=pl.lit(INTRA_PROVIDER_LATENCY_MS)
    )
    return pl.concat([both, intra]).sort("a", "b")


def latency_map(data: PlanningData) -> dict[tuple[str, str], float]:
    return {(a, b): ms for a, b, ms in provider_latency(data).iter_rows()}


def _dependency_latency(data: PlanningData) -> pl.DataFrame:
    """Per shard and candidate provider: summed and worst p95 to the current providers of its
    dependencies and dependents, and the first limit broken (unknown latency breaks it)."""
    deps = data.dependencies
    edges = pl.concat(
        [
            deps.select("shard_id", other="depends_on_shard_id", limit="max_latency_ms"),
            deps.select(shard_id="depends_on_shard_id", other="shard_id", limit="max_latency_ms"),
        ]
    ).join(data.shards.select(other="shard_id", other_provider="current_provider_id"), on="other")
    candidates = data.providers.select(cand_provider="provider_id")
    lat = provider_latency(data).rename({"a": "cand_provider", "b": "other_provider"})
    scored = (
        edges.join(candidates, how="cross")
        .join(lat, on=["cand_provider", "other_provider"], how="left")
        .with_columns(
            broken=pl.col("p95_ms").is_null() | (pl.col("p95_ms") > pl.col("limit")),
            message=pl.format(
                "latency to {} ({}) is {} ms, limit {} ms",
                "other",
                "other_provider",
                pl.col("p95_ms").round(1).cast(pl.String).fill_null("unknown"),
                pl.col("limit").round(1),
            ),
        )
        .sort("shard_id", "cand_provider", "other")
    )
    return scored.group_by("shard_id", provider_id="cand_provider").agg(
        latency_sum_ms=pl.col("p95_ms").sum(),
        latency_p95_max_ms=pl.col("p95_ms").max(),
        latency_block=pl.col("message").filter(pl.col("broken")).first(),
    )


def _incident_stats(data: PlanningData, horizon_h: int) -> pl.DataFrame:
    """Expected incident downtime per provider region (incidents count where they struck)."""
    incidents = data.incidents
    if incidents.is_empty():
        return pl.DataFrame(
            schema={
                "provider_id": pl.String,
                "region": pl.String,
                "expected_downtime_s": pl.Float64,
            }
        )
    last_day = incidents["day"].max()
    window = incidents.filter(
        pl.col("day") > pl.lit(last_day) - pl.duration(days=INCIDENT_WINDOW_DAYS)
    )
    return window.group_by("provider_id", "region").agg(
        expected_downtime_s=pl.col("incident_minutes").sum()
        / (pl.len() * 1440.0)
        * (horizon_h * 3600.0)
        + pl.col("has_open_incident").filter(pl.col("day") == last_day).any().cast(pl.Float64)
        * OPEN_INCIDENT_DOWNTIME_S
    )


def _data_class_rules(policy: PolicyFile) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "data_class": name,
                "min_trust": rule.min_trust,
                "class_providers": rule.allowed_providers,
                "class_regions": rule.allowed_regions,
            }
            for name, rule in policy.data_classes.items()
        ],
        schema={
            "data_class": pl.String,
            "min_trust": pl.Float64,
            "class_providers": pl.List(pl.String),
            "class_regions": pl.List(pl.String),
        },
    )


def _not_in(list_col: str, value: str) -> pl.Expr:
    return pl.col(list_col).is_not_null() & ~pl.col(list_col).list.contains(pl.col(value))


def _block_reasons(policy: PolicyFile) -> list[pl.Expr]:
    def reason(cond: pl.Expr, *message: str | pl.Expr) -> pl.Expr:
        return pl.when(cond).then(pl.format(*message))

    return [
        reason(
            ~pl.col("allowed_data_classes").list.contains(pl.col("data_class")),
            "data class {} not allowed by provider {}'s contract",
            "data_class",
            "provider_id",
        ),
        reason(
            pl.col("trust_score") < pl.col("min_trust").fill_null(0.0),
            "trust {} of {} below min_trust {} for data class {}",
            pl.col("trust_score").round(3),
            "provider_id",
            "min_trust",
            "data_class",
        ),
        reason(
            _not_in("class_providers", "provider_id"),
            "provider {} not allowed for data class {}",
            "provider_id",
            "data_class",
        ),
        reason(
            _not_in("class_regions", "region"),
            "region {} not allowed for data class {}",
            "region",
            "data_class",
        ),
        reason(
            _not_in("allowed_providers", "provider_id"),
            "provider {} not in the workload's allowed providers",
            "provider_id",
        ),
        reason(
            _not_in("allowed_regions", "region"),
            "region {} not in the workload's allowed regions",
            "region",
        ),
        reason(
            pl.col("price_max") > pl.col("price_cap_per_cpu_hour"),
            "price cap: forecast {} per cpu-hour at {} above the contract cap {}",
            pl.col("price_max").round(4),
            "provider_id",
            "price_cap_per_cpu_hour",
        ),
    ]


def score_candidates(
    data: PlanningData,
    outlook: Outlook,
    policy: PolicyFile,
    trust: pl.DataFrame,
    shard_ids: list[str] | None = None,
) -> pl.DataFrame:
    """Every shard (or only `shard_ids`) x host with its terms, total, `allowed`/`blocked_by`
    and the facts behind them (columns SCORE_COLUMNS), sorted by shard and host.
    `trust`: `provider_id, score`."""
    horizon = outlook.horizon_h
    dcps = policy.planning.downtime_cost_per_second
    peaks = outlook.peak_demand()
    shards = (
        data.shards.select(
            "shard_id",
            "current_host_id",
            "current_provider_id",
            "data_class",
            "state_gb",
            "gpu_request",
            "allowed_providers",
            "allowed_regions",
        )
        .join(peaks, on="shard_id", how="left")
        .join(outlook.mean_demand(), on="shard_id", how="left")
        .join(_data_class_rules(policy), on="data_class", how="left")
    )
    if shard_ids is not None:
        shards = shards.filter(pl.col("shard_id").is_in(shard_ids))
    overload = expected_overload(
        data,
        outlook,
        policy.forecast.interval,
        shards["shard_id"].to_list(),
        relief_spread=policy.planning.relief_spread,
        measured_spread=policy.planning.measured_spread,
        burst_risk=policy.planning.burst_risk,
    )
    load = (
        outlook.demand.filter(pl.col("resource") == "cpu")
        .join(data.shards.select("shard_id", host_id="current_host_id"), on="shard_id")
        .group_by("host_id", "step")
        .agg(pl.col("yhat").sum())
        .group_by("host_id")
        .agg(load_peak=pl.col("yhat").max())
    )
    hosts = (
        data.hosts.select("host_id", "provider_id", "region", "cpu_capacity")
        .join(outlook.min_supply().select("host_id", supply_cpu="cpu"), on="host_id", how="left")
        .join(load, on="host_id", how="left")
        .join(outlook.mean_price(), on=["provider_id", "region"], how="left")
        .join(
            data.providers.select(
                "provider_id",
                "list_price_per_gb_hour",
                "list_price_per_gpu_hour",
                "allowed_data_classes",
                "price_cap_per_cpu_hour",
            ),
            on="provider_id",
            how="left",
        )
        .join(trust.select("provider_id", trust_score="score"), on="provider_id", how="left")
        .join(_incident_stats(data, horizon), on=["provider_id", "region"], how="left")
        .join(
            data.spot_interruption.select(
                "provider_id", "region", spot_interruption_rate="interruption_rate"
            ),
            on=["provider_id", "region"],
            how="left",
        )
        .with_columns(
            pl.col("load_peak").fill_null(0.0),
            pl.col("expected_downtime_s").fill_null(0.0)
            + pl.col("spot_interruption_rate").fill_null(0.0)
            * (horizon / HOURS_PER_MONTH)
            * SPOT_INTERRUPTION_DOWNTIME_S,
            pl.col("trust_score").fill_null(policy.trust.neutral_score),
        )
    )
    egress = data.providers.select(current_provider_id="provider_id", egress="egress_per_gb")
    pairs = (
        shards.join(egress, on="current_provider_id", how="left")
        .join(hosts, how="cross")
        .join(_dependency_latency(data), on=["shard_id", "provider_id"], how="left")
        .join(overload, on=["shard_id", "host_id"], how="left")
    )
    is_current = pl.col("host_id") == pl.col("current_host_id")
    moving = ~is_current.fill_null(False) & pl.col("current_host_id").is_not_null()
    others_load = pl.col("load_peak") - pl.when(is_current).then(pl.col("cpu_point")).otherwise(0)
    headroom = (pl.col("supply_cpu") - others_load - pl.col("cpu")) / pl.col("cpu_capacity")
    crossing_providers = pl.col("provider_id") != pl.col("current_provider_id")
    scored = (
        pairs.with_columns(
            is_current=is_current.fill_null(False),
            run_cost=horizon
            * (
                pl.col("price_mean") * pl.col("cpu_mean")
                + pl.col("list_price_per_gb_hour") * pl.col("mem_gb_mean")
                + pl.col("list_price_per_gpu_hour") * pl.col("gpu_request")
            ),
            downtime_s=pl.when(moving).then(downtime_seconds(pl.col("state_gb"))).otherwise(0.0),
            egress_cost=pl.when(moving & crossing_providers)
            .then(pl.col("state_gb") * pl.col("egress").fill_null(0.0))
            .otherwise(0.0),
            estimated_bytes=pl.when(moving)
            .then((pl.col("state_gb") * GIB).round(0).cast(pl.Int64))
            .otherwise(0),
            headroom=headroom,
            latency_cost=pl.col("latency_sum_ms").fill_null(0.0)
            * LATENCY_COST_PER_MS_DAY
            * (horizon / 24),
            incident_risk=pl.col("expected_downtime_s") * dcps,
            latency_violation=pl.col("latency_block"),
        )
        .with_columns(
            migration_cost=pl.col("egress_cost") + pl.col("downtime_s") * dcps,
            headroom_risk=pl.col("overload_hours").fill_null(0.0) * overload_unit_cost(dcps),
            overload_relief=pl.col("relief_hours").fill_null(0.0) * overload_unit_cost(dcps),
            trust_cost=(1 - pl.col("trust_score")) * TRUST_WEIGHT * pl.col("run_cost"),
            risk=(
                pl.col("expected_downtime_s") / (horizon * 3600)
                + pl.col("overload_p").fill_null(0.0)
            ).clip(0.0, 1.0),
            blocked_by=pl.concat_str(_block_reasons(policy), separator="; ", ignore_nulls=True),
        )
        .with_columns(
            total=pl.sum_horizontal(*TERMS),
            blocked_by=pl.when(pl.col("blocked_by") == "").then(None).otherwise("blocked_by"),
        )
        .with_columns(allowed=pl.col("blocked_by").is_null())
    )
    return scored.select(SCORE_COLUMNS).sort("shard_id", "host_id")


def candidate_table(scores: pl.DataFrame) -> CandidateTable:
    """The scores in the placement solver's column form."""
    return CandidateTable(
        shard_ids=scores["shard_id"].to_numpy().astype(object),
        host_ids=scores["host_id"].to_numpy().astype(object),
        terms={term: scores[term].to_numpy().astype(float) for term in TERMS},
        allowed=scores["allowed"].to_numpy().astype(bool),
        blocked_by=np.array(scores["blocked_by"].to_list(), dtype=object),
    )


def term_breakdown(row: Mapping[str, object]) -> dict[str, float]:
    return {term: float(row[term]) for term in TERMS}
