"""Forecasting throughput and accuracy on synthetic simulator-like series and on real
Bitbrains VM CPU traces.

Run: .venv/bin/python bench/bench_forecast.py [--synthetic N] [--days D] [--vms M]
       [--processes P] [--prophet-max K]

Throughput counts everything `forecast_series` does (input preparation, the vectorized
baseline and its backtest for every series, screening, Prophet backtest fits at every cut-off,
model choice, final fits), wall clock, worker start-up included. Accuracy is the median over
series of the mean backtest MASE (rolling origin, 3 cut-offs, 24 h horizon), over all series
and over the set screening sent to Prophet (where Prophet alone has a backtest).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast import forecast_series

BITBRAINS = Path(__file__).resolve().parents[2] / "shared" / "data" / "bitbrains" / "trace.parquet"


def synthetic_frame(n_series: int, days: int, seed: int = 7) -> pl.DataFrame:
    """Like the simulator: daily and weekly cycles, growth, bursts and noise per shard metric."""
    rng = np.random.default_rng(seed)
    hours = days * 24
    t = np.arange(hours)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    times = pl.datetime_range(start, start + timedelta(hours=hours - 1), "1h", eager=True)
    parts = []
    for i in range(n_series):
        level = rng.uniform(20, 200)
        daily = level * rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * (t + rng.integers(24)) / 24)
        weekly = level * rng.uniform(0.0, 0.2) * (((t // 24) % 7) < 5)
        growth = level * rng.uniform(-0.01, 0.03) / 24  # per hour: -1 % to +3 % a day
        bursts = np.zeros(hours)
        for begin in rng.choice(hours, size=rng.integers(0, 4), replace=False):
            bursts[begin : begin + rng.integers(1, 6)] += level * rng.uniform(0.3, 1.0)
        noise = rng.normal(0, level * rng.uniform(0.02, 0.1), hours)
        values = np.maximum(level + daily + weekly + growth * t + bursts + noise, 0.0)
        metric = ("cpu", "mem", "net")[i % 3]
        parts.append(
            pl.DataFrame(
                {"series_id": f"shard:web-{i // 3:03d}:{metric}", "ts": times, "value": values}
            )
        )
    return pl.concat(parts)


def bitbrains_frame(n_vms: int) -> pl.DataFrame:
    """CPU usage (MHz) per VM; `forecast_series` averages the 5-minute samples per hour."""
    trace = pl.read_parquet(BITBRAINS)
    ids = trace["id"].unique().sort()[:n_vms]
    return trace.filter(pl.col("id").is_in(ids.implode())).select(
        series_id=pl.format("vm:{}:cpu", "id"), ts="timestamp", value="cpu_usage"
    )


def _median(frame: pl.DataFrame, column: str) -> str:
    value = frame[column].median() if frame.height else None
    return "-" if value is None else f"{value:.3f}"


def run(name: str, frame: pl.DataFrame, processes: int, prophet_max: int) -> None:
    n_series = frame["series_id"].n_unique()
    started = time.perf_counter()
    result = forecast_series(
        frame,
        horizon_h=24,
        interval=0.9,
        cutoffs=3,
        processes=processes,
        prophet_max_series=prophet_max,
        on_stage=lambda message: print(f"  {message}"),
    )
    elapsed = time.perf_counter() - started
    summary = result.summary
    hours = summary["n_hours"]
    print(f"== {name}: {n_series} series, {hours.min()}-{hours.max()} hours each ==")
    print(
        f"wall time {elapsed:.1f} s with {processes} processes, Prophet budget {prophet_max} "
        f"-> {n_series / elapsed:.1f} series/s"
    )
    screened = summary.filter(pl.col("mase_prophet").is_not_null())
    print(f"median MASE, all {summary.height} series:")
    for column in ("mase_chosen", "mase_seasonal_naive"):
        print(f"  {column:<20} {_median(summary, column)}")
    print(f"median MASE, the {screened.height} series screened for Prophet:")
    for column in ("mase_chosen", "mase_prophet", "mase_blend", "mase_seasonal_naive"):
        print(f"  {column:<20} {_median(screened, column)}")
    print(f"median coverage_chosen (target 0.9) {_median(summary, 'coverage_chosen')}")
    worse = summary.filter(pl.col("mase_chosen") > pl.col("mase_seasonal_naive")).height
    print(f"series where chosen MASE > baseline MASE: {worse}")
    counts = summary.group_by("model", "reason").len().sort("len", descending=True)
    print("choices: " + ", ".join(f"{m}/{r}: {n}" for m, r, n in counts.iter_rows()))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=200, help="synthetic series")
    parser.add_argument("--days", type=int, default=14, help="days of hourly synthetic history")
    parser.add_argument("--vms", type=int, default=50, help="Bitbrains VMs (at most 50)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--prophet-max",
        type=int,
        default=ForecastPolicy().prophet_max_series,
        help="Prophet budget (series); default from policy.yaml's default",
    )
    args = parser.parse_args()
    if args.synthetic:
        synthetic = synthetic_frame(args.synthetic, args.days)
        run("synthetic (simulator-like)", synthetic, args.processes, args.prophet_max)
    if args.vms:
        bitbrains = bitbrains_frame(args.vms)
        run("Bitbrains GWA-T-12 VM cpu_usage", bitbrains, args.processes, args.prophet_max)


if __name__ == "__main__":
    main()
