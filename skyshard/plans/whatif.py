"""`predict_migration`: the seed's per-shard question, answered with the planner's parts.
Forecast this shard, detect its bottleneck, score its candidate hosts, return the best move
with its cost breakdown, or None when staying is best."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from skyshard.config.policy import PolicyFile
from skyshard.config.shards import Shard
from skyshard.forecast import forecast_series
from skyshard.forecast.series_id import SeriesKind, parse_series_ids
from skyshard.scoring import PlanningData, build_outlook, forecast_input, forecast_limits
from skyshard.scoring.bottlenecks import predict_bottlenecks
from skyshard.scoring.candidates import score_candidates, term_breakdown
from skyshard.scoring.trust_inputs import neutral_trust_scores


@dataclass(frozen=True)
class MigrationRequest:
    """A proposed move of one shard, with why, what it saves and what it risks.

    `saving_per_day` is the stay cost minus the target's (migration cost included), per day;
    `terms` are the target's cost terms, `stay_terms` the current host's."""

    shard_id: str
    from_host: str
    from_provider: str
    to_host: str
    to_provider: str
    reason: str  # bottleneck, incident, cost, trust or policy
    detail: str
    saving_per_day: float
    risk: float
    estimated_bytes: int
    downtime_s: float
    terms: dict[str, float]
    stay_terms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardAssessment:
    """Everything `skyshard whatif` shows: candidates, bottlenecks and the answer."""

    shard_id: str
    scores: pl.DataFrame
    bottlenecks: pl.DataFrame
    request: MigrationRequest | None
    why_not: str | None


def _shard_forecasts(data: PlanningData, shard_id: str, policy: PolicyFile) -> pl.DataFrame:
    """Forecast only what this shard's answer depends on: its demand, its host's free capacity
    and prices; everything else falls back to the last observation."""
    host = data.shards.filter(pl.col("shard_id") == shard_id)["current_host_id"][0]
    kind, owner, _ = parse_series_ids()
    wanted = forecast_input(data).filter(
        ((kind == SeriesKind.SHARD.value) & (owner == shard_id))
        | ((kind == SeriesKind.HOST.value) & (owner == host))
        | (kind == SeriesKind.PRICE.value)
    )
    limits = forecast_limits(data)
    return forecast_series(wanted, policy.forecast, limits=limits, processes=1).forecasts


def assess_shard(
    shard_id: str,
    data: PlanningData,
    policy: PolicyFile,
    trust: pl.DataFrame,
    forecasts: pl.DataFrame | None = None,
    providers: Sequence[str] | None = None,
) -> ShardAssessment:
    """Score one shard's candidates (hosts of `providers`, all when None) and pick its move."""
    if shard_id not in set(data.shards["shard_id"]):
        raise ValueError(f"unknown shard {shard_id!r}: not in marts.dim_shards")
    if forecasts is None:
        forecasts = _shard_forecasts(data, shard_id, policy)
    horizon = policy.forecast.horizon_hours
    outlook = build_outlook(data, forecasts, horizon)
    bottlenecks = predict_bottlenecks(data, outlook).filter(pl.col("shard_id") == shard_id)
    scores = score_candidates(data, outlook, policy, trust, shard_ids=[shard_id])
    stay = scores.filter(pl.col("is_current"))
    if providers is not None:
        scores = scores.filter(pl.col("provider_id").is_in(list(providers)) | pl.col("is_current"))
    # Alone, this shard's move leaves its dependencies where they are: their limits must hold.
    options = scores.filter(
        pl.col("allowed")
        & pl.col("latency_violation").is_null()
        & ~pl.col("is_current")
        & (pl.col("headroom") >= 0)
    )
    if options.is_empty():
        return ShardAssessment(shard_id, scores, bottlenecks, None, "no allowed host has room")
    best = options.sort("total", "host_id").row(0, named=True)
    current = stay.row(0, named=True) if not stay.is_empty() else None
    must_move = not bottlenecks.is_empty() or current is None or not current["allowed"]
    # alone, the move also takes its share of overload off the host it leaves
    saving = (current["total"] + current["overload_relief"] - best["total"]) if current else 0.0
    per_day = saving * 24 / horizon
    if not must_move and per_day < policy.planning.min_saving_per_day:
        why = (
            f"no bottleneck ahead and the best move ({best['host_id']}) saves "
            f"{per_day:.2f} per day, below min_saving_per_day {policy.planning.min_saving_per_day}"
        )
        return ShardAssessment(shard_id, scores, bottlenecks, None, why)
    if current is not None and not current["allowed"]:
        reason = "trust" if "trust" in current["blocked_by"] else "policy"
        detail = f"current host blocked: {current['blocked_by']}"
    elif not bottlenecks.is_empty():
        first = bottlenecks.row(0, named=True)
        reason = "incident" if first["cause"] == "open_incident" else "bottleneck"
        detail = f"{first['cause']} in {first['hours_ahead']} h: {first['detail']}"
    else:
        reason, detail = "cost", f"saves {per_day:.2f} per day"
    request = MigrationRequest(
        shard_id=shard_id,
        from_host=current["host_id"] if current else "",
        from_provider=current["provider_id"] if current else "",
        to_host=best["host_id"],
        to_provider=best["provider_id"],
        reason=reason,
        detail=detail,
        saving_per_day=per_day,
        risk=float(best["risk"]),
        estimated_bytes=int(best["estimated_bytes"]),
        downtime_s=float(best["downtime_s"]),
        terms=term_breakdown(best),
        stay_terms=term_breakdown(current) if current else {},
    )
    return ShardAssessment(shard_id, scores, bottlenecks, request, None)


def predict_migration(
    shard: Shard | str,
    history: PlanningData,
    providers: Sequence[str] | None = None,
    *,
    policy: PolicyFile | None = None,
    trust: pl.DataFrame | None = None,
    forecasts: pl.DataFrame | None = None,
) -> MigrationRequest | None:
    """The best move for `shard` given the marts' `history`, among hosts of `providers` (all
    when None), or None when it should stay. Trust defaults to the policy's neutral score;
    `forecasts` (a forecast table) skips fitting."""
    policy = policy or PolicyFile()
    shard_id = shard.id if isinstance(shard, Shard) else shard
    if trust is None:
        trust = neutral_trust_scores(history.providers["provider_id"], policy.trust.neutral_score)
    return assess_shard(shard_id, history, policy, trust, forecasts, providers).request
