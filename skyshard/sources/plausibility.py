"""Plausibility bounds per raw table: rows no real system could have sent go to quarantine.

Parsers refuse what is malformed (not a number, negative, NaN); these bounds refuse what is
well-formed but impossible against the configured sky and the clock:

- every timestamp: not older than `RETENTION` and not later than now + `FUTURE_TOLERANCE`
  (a maintenance may be announced up to `MAINTENANCE_AHEAD` ahead); one sample dated 2199
  would otherwise stretch every hourly spine to that year;
- shard usage: at most `CAPACITY_FACTOR` x the largest capacity any configured host declares
  for that resource (a shard runs on one host);
- host metrics: at most `CAPACITY_FACTOR` x that host's declared capacity;
- prices: at most `PRICE_FACTOR` x the provider's contract price per cpu-hour, per cpu-hour;
- latency: at most `MAX_RTT_MS`.

A bound whose declared reference is 0 (capacity or price not configured) is not applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from skyshard.config.sky import Sky
from skyshard.sources.base import QuarantinedRow

RETENTION = timedelta(days=3 * 366)
FUTURE_TOLERANCE = timedelta(hours=1)
MAINTENANCE_AHEAD = timedelta(days=366)
CAPACITY_FACTOR = 4.0
PRICE_FACTOR = 100.0
MAX_RTT_MS = 60_000.0
RESOURCES = ("cpu", "mem_gb", "gpu", "net_mbps")


@dataclass(frozen=True)
class Bounds:
    """The limits for one ingestion run, from the sky and the time it runs."""

    earliest: datetime
    latest: datetime
    shard_max: dict[str, float]
    """metric → largest plausible shard usage."""
    host_max: pl.DataFrame
    """host_id, metric, limit: largest plausible host metric."""
    price_max: dict[str, float]
    """provider_id → largest plausible price per cpu-hour."""

    @classmethod
    def of(cls, sky: Sky, now: datetime) -> Bounds:
        hosts = [h for _, h in sky.hosts.values()]
        largest = {r: max((getattr(h.capacity, r) for h in hosts), default=0.0) for r in RESOURCES}
        host_rows = [
            (h.id, f"{r}_{kind}", CAPACITY_FACTOR * getattr(h.capacity, r))
            for h in hosts
            for r in RESOURCES
            for kind in ("capacity", "free")
            if getattr(h.capacity, r) > 0
        ]
        return cls(
            earliest=now - RETENTION,
            latest=now + FUTURE_TOLERANCE,
            shard_max={r: CAPACITY_FACTOR * v for r, v in largest.items() if v > 0},
            host_max=pl.DataFrame(
                host_rows,
                schema={"host_id": pl.String, "metric": pl.String, "limit": pl.Float64},
                orient="row",
            ),
            price_max={
                p.id: PRICE_FACTOR * p.contract.price_per_cpu_hour
                for p in sky.providers
                if p.contract.price_per_cpu_hour > 0
            },
        )

    def checks(self, table: str, frame: pl.DataFrame) -> list[tuple[pl.Expr, pl.Expr | str]]:
        """(condition marking a row implausible, reason) for `table`, in order."""
        late = self.latest.isoformat(sep=" ")
        early = self.earliest.isoformat(sep=" ")
        if table == "incidents":
            ahead = (self.latest + MAINTENANCE_AHEAD).isoformat(sep=" ")
            is_incident = pl.col("kind") == "incident"
            return [
                (
                    is_incident & (pl.col("started_at") > self.latest),
                    f"incident starts in the future (after {late})",
                ),
                (
                    pl.col("started_at") > self.latest + MAINTENANCE_AHEAD,
                    f"maintenance starts more than a year ahead (after {ahead})",
                ),
                (pl.col("resolved_at") > self.latest, f"resolved in the future (after {late})"),
                (
                    pl.coalesce("resolved_at", "scheduled_until", "started_at")
                    < pl.lit(self.earliest),
                    f"ended before the retention window (before {early})",
                ),
            ]
        if "ts" not in frame.columns:
            return []
        checks: list[tuple[pl.Expr, pl.Expr | str]] = [
            (pl.col("ts") > self.latest, f"timestamp in the future (after {late})"),
            (pl.col("ts") < self.earliest, f"timestamp before the retention window ({early})"),
        ]
        value_check = {
            "shard_usage": self._shard_usage,
            "host_metrics": self._host_metrics,
            "prices": self._prices,
            "latency": self._latency,
        }.get(table)
        return checks + ([value_check()] if value_check else [])

    def _shard_usage(self) -> tuple[pl.Expr, pl.Expr]:
        limit = pl.col("metric").replace_strict(self.shard_max, default=None)
        return (
            pl.col("value") > limit,
            pl.format(
                "value {} exceeds {} x the largest host capacity for {} ({})",
                "value",
                pl.lit(CAPACITY_FACTOR),
                "metric",
                limit,
            ),
        )

    def _host_metrics(self) -> tuple[pl.Expr, pl.Expr]:
        return (
            pl.col("value") > pl.col("_limit"),
            pl.format(
                "value {} exceeds {} x the declared capacity of host {} ({})",
                "value",
                pl.lit(CAPACITY_FACTOR),
                "host_id",
                "_limit",
            ),
        )

    def _prices(self) -> tuple[pl.Expr, pl.Expr]:
        limit = pl.col("provider_id").replace_strict(self.price_max, default=None)
        per_cpu = pl.col("price") / pl.col("cpu_per_instance")
        return (
            per_cpu > limit,
            pl.format(
                "price per cpu-hour {} exceeds {} x the contract price ({})",
                per_cpu,
                pl.lit(PRICE_FACTOR),
                limit,
            ),
        )

    def _latency(self) -> tuple[pl.Expr, str]:
        return pl.col("rtt_ms") > MAX_RTT_MS, f"rtt_ms exceeds {MAX_RTT_MS:.0f} ms"


def set_aside_implausible(
    frames: dict[str, pl.DataFrame], bounds: Bounds
) -> tuple[dict[str, pl.DataFrame], list[QuarantinedRow]]:
    """The frames without implausible rows, and those rows with the first bound they break."""
    kept: dict[str, pl.DataFrame] = {}
    quarantine: list[QuarantinedRow] = []
    for table, frame in frames.items():
        if table == "host_metrics":
            frame = frame.join(bounds.host_max, on=["host_id", "metric"], how="left").rename(
                {"limit": "_limit"}
            )
        checks = bounds.checks(table, frame)
        columns = [c for c in frame.columns if c != "_limit"]
        if not checks or frame.is_empty():
            kept[table] = frame.select(columns)
            continue
        # Reasons are formatted for the refused rows only: millions of good rows stay cheap.
        refused = frame.select(
            pl.any_horizontal([condition.fill_null(False) for condition, _ in checks])
        ).to_series()
        if not refused.any():
            kept[table] = frame.select(columns)
            continue
        reason = pl.when(checks[0][0]).then(_expr(checks[0][1]))
        for condition, text in checks[1:]:
            reason = reason.when(condition).then(_expr(text))
        bad = frame.filter(refused).with_columns(reason.alias("_reason"))
        quarantine += [
            QuarantinedRow(table, row["_reason"], _describe(row, columns))
            for row in bad.head(_MAX_LISTED).iter_rows(named=True)
        ]
        if bad.height > _MAX_LISTED:
            quarantine.append(
                QuarantinedRow(
                    table,
                    f"{bad.height - _MAX_LISTED} more implausible rows",
                    f"first: {bad['_reason'][_MAX_LISTED]}",
                )
            )
        kept[table] = frame.filter(~refused).select(columns)
    return kept, quarantine


_MAX_LISTED = 10_000
"""Implausible rows listed one by one in the quarantine per table and feed; the rest counted."""


def _describe(row: dict, columns: list[str]) -> str:
    return " ".join(f"{c}={row[c]}" for c in columns if c != "provider_id")


def _expr(text: pl.Expr | str) -> pl.Expr:
    return pl.lit(text) if isinstance(text, str) else text
