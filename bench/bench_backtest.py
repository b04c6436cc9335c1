"""Backtest bench: the policies of `skyshard.plans.backtest` on real VM traces (Bitbrains) and
on a tight synthetic sky, against the issue's targets.

Run: .venv/bin/python -m bench.bench_backtest [--trace bitbrains|synthetic] [--seeds 0,1]
     [--steps 6] [--window-h 168] [--headroom 1.3] [--slow-budget 0] [--shards 100]
     [--relief-spread 1] [--level-shift-hours 0] [--measured-spread] [--no-burst-risk]
     [--hold-hosts-with-room] [--no-global-model]

The sky: the trace's VMs (cpu cores used per hour) as shards, packed first-fit onto hosts of
three providers so total capacity is `headroom` x the peak of the summed demand; provider
prices differ and the cheapest one doubles half-way through the window. The predictive policy
is the live planning cycle (`plan_forecasts` with the policy's forecast settings; `--slow-budget`
sets `slow_budget_seconds`, 0 keeps the replay to the cheap estimators so it runs in minutes).
Targets: predictive >= 90 % of the hindsight saving over static; overload shard-hours <= 1/3
of reactive's; migrations <= reactive's.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from skyshard.config.policy import ForecastPolicy, PlanningPolicy, PolicyFile
from skyshard.plans.backtest import BacktestOptions, policy_backtest
from skyshard.scoring import PlanningData

TRACE = "/work/shared/data/bitbrains/trace.parquet"
PROVIDERS = (("alpha", 0.030), ("beta", 0.034), ("gamma", 0.040))
SPIKE = 2.5


def bitbrains_demand(hours: int) -> tuple[list[str], np.ndarray]:
    """(vm ids, cores used (vms, hours)) from the 5-minute MHz samples."""
    trace = pl.read_parquet(TRACE).with_columns(
        hour=pl.col("timestamp")
        .dt.truncate("1h")
        .dt.replace_time_zone(None)
        .cast(pl.Datetime("us")),
        cores=pl.col("cpu_usage") / 2600.0,
    )
    hourly = trace.group_by("id", "hour").agg(pl.col("cores").mean()).sort("id", "hour")
    grid = sorted(hourly["hour"].unique())[:hours]
    ids = sorted(hourly["id"].unique())
    dense = (
        pl.DataFrame({"id": ids})
        .join(pl.DataFrame({"hour": grid}), how="cross")
        .join(hourly, on=["id", "hour"], how="left")
        .with_columns(pl.col("cores").forward_fill().over("id").fill_null(0.0))
        .sort("id", "hour")["cores"]
        .to_numpy()
        .reshape(len(ids), len(grid))
    )
    return [f"vm-{i}" for i in ids], dense


def synthetic_demand(hours: int, seed: int, n: int = 100) -> tuple[list[str], np.ndarray]:
    """Daily and weekly cycles, a step change for a tenth of the shards, spikes and noise."""
    ids, demand, _ = synthetic_sky(hours, seed, n)
    return ids, demand


def synthetic_sky(hours: int, seed: int, n: int = 100) -> tuple[list[str], np.ndarray, np.ndarray]:
    """`synthetic_demand` and where its one-hour spikes (x SPIKE) fell (shards, hours)."""
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    base = rng.uniform(0.5, 4, n)[:, None]
    daily = 1 + rng.uniform(0.1, 0.6, n)[:, None] * np.sin(
        2 * np.pi * (t - rng.integers(0, 24, n)[:, None]) / 24
    )
    weekly = 1 + 0.15 * np.sin(2 * np.pi * t / 168)
    step = np.where(
        (rng.random(n) < 0.1)[:, None] & (t >= rng.integers(96, hours, n)[:, None]), 1.8, 1.0
    )
    spiked = rng.random((n, hours)) < 0.01
    noise = rng.lognormal(0, 0.1, (n, hours))
    demand = base * daily * weekly * step * np.where(spiked, SPIKE, 1.0) * noise
    return [f"s-{i:03d}" for i in range(n)], demand, spiked


def planning_data(ids: list[str], demand: np.ndarray, headroom: float, seed: int) -> PlanningData:
    rng = np.random.default_rng(seed)
    n, hours = demand.shape
    start = datetime(2026, 1, 5)
    grid = [start + timedelta(hours=k) for k in range(hours)]
    peak_total = demand.sum(axis=0).max()
    n_hosts = max(4, n // 6)
    cap = np.full(n_hosts, np.ceil(headroom * peak_total / n_hosts))
    provider = np.arange(n_hosts) % len(PROVIDERS)
    host_ids = [f"{PROVIDERS[p][0]}-h{j:03d}" for j, p in enumerate(provider)]
    # first fit on the first day's peak, the way the fleet was packed
    load = np.zeros(n_hosts)
    current = np.zeros(n, dtype=int)
    for s in np.argsort(-demand[:, :24].max(axis=1)):
        room = cap - load - demand[s, :24].max()
        host = int(np.argmax(room >= 0)) if (room >= 0).any() else int(np.argmax(room))
        current[s] = host
        load[host] += demand[s, :24].max()
    providers = pl.DataFrame(
        {
            "provider_id": [p for p, _ in PROVIDERS],
            "list_price_per_cpu_hour": [price for _, price in PROVIDERS],
            "list_price_per_gb_hour": [0.0] * 3,
            "list_price_per_gpu_hour": [0.0] * 3,
            "egress_per_gb": [0.02, 0.05, 0.08],
            "allowed_data_classes": [["public", "internal"]] * 3,
            "price_cap_per_cpu_hour": [None, None, None],
        },
        schema_overrides={"price_cap_per_cpu_hour": pl.Float64},
    )
    hosts = pl.DataFrame(
        {
            "host_id": host_ids,
            "provider_id": [PROVIDERS[p][0] for p in provider],
            "region": ["r1"] * n_hosts,
            "cpu_capacity": cap,
            "mem_gb_capacity": np.full(n_hosts, 1e4),
            "gpu_capacity": np.zeros(n_hosts),
            "net_mbps_capacity": np.full(n_hosts, 1e5),
        }
    )
    shards = pl.DataFrame(
        {
            "shard_id": ids,
            "workload_id": ["vms"] * n,
            "cpu_request": demand[:, :24].max(axis=1),
            "mem_gb_request": np.ones(n),
            "gpu_request": np.zeros(n),
            "net_mbps_request": np.ones(n),
            "state_gb": rng.uniform(5, 40, n),
            "data_class": ["internal"] * n,
            "current_host_id": [host_ids[c] for c in current],
            "current_provider_id": [PROVIDERS[provider[c]][0] for c in current],
            "current_region": ["r1"] * n,
            "allowed_providers": [None] * n,
            "allowed_regions": [None] * n,
            "anti_affinity": [False] * n,
        },
        schema_overrides={
            "allowed_providers": pl.List(pl.String),
            "allowed_regions": pl.List(pl.String),
        },
    )
    usage = pl.DataFrame(
        {
            "shard_id": np.repeat(ids, hours),
            "host_id": np.repeat([host_ids[c] for c in current], hours),
            "provider_id": np.repeat([PROVIDERS[provider[c]][0] for c in current], hours),
            "hour": grid * n,
            "cpu_avg": demand.ravel(),
            "mem_gb_avg": np.full(n * hours, 0.5),
            "net_mbps_avg": np.full(n * hours, 0.5),
        }
    )
    used = usage.group_by("host_id", "hour").agg(pl.col("cpu_avg").sum())
    capacity = (
        hosts.join(pl.DataFrame({"hour": grid}), how="cross")
        .join(used, on=["host_id", "hour"], how="left")
        .fill_null(0.0)
        .select(
            "host_id",
            "provider_id",
            "region",
            "hour",
            "cpu_capacity",
            cpu_free=pl.col("cpu_capacity") - pl.col("cpu_avg"),
            mem_gb_free=pl.col("mem_gb_capacity"),
            net_mbps_free=pl.col("net_mbps_capacity"),
        )
    )
    half = grid[hours // 2 + 36]
    prices = (
        pl.DataFrame({"provider_id": [p for p, _ in PROVIDERS], "base": [x for _, x in PROVIDERS]})
        .join(pl.DataFrame({"hour": grid}), how="cross")
        .select(
            "provider_id",
            region=pl.lit("r1"),
            hour="hour",
            price_per_cpu_hour=pl.when(
                (pl.col("provider_id") == "alpha") & (pl.col("hour") >= half)
            )
            .then(pl.col("base") * 2)
            .otherwise(pl.col("base")),
        )
    )
    incidents = pl.DataFrame(
        {
            "provider_id": [p for p, _ in PROVIDERS],
            "region": ["r1"] * 3,
            "day": [date(2026, 1, 5)] * 3,
            "incident_minutes": [0.0] * 3,
            "has_open_incident": [False] * 3,
        }
    )
    latency = pl.DataFrame(
        {"src_provider_id": ["alpha"], "dst_provider_id": ["beta"], "p95_ms": [5.0]}
    )
    return PlanningData(
        providers=providers,
        hosts=hosts,
        shards=shards,
        dependencies=pl.DataFrame(
            schema={
                "shard_id": pl.String,
                "depends_on_shard_id": pl.String,
                "max_latency_ms": pl.Float64,
            }
        ),
        usage=usage,
        capacity=capacity,
        prices=prices,
        incidents=incidents,
        latency=latency,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trace", default="bitbrains", choices=["bitbrains", "synthetic"])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", default="6")
    parser.add_argument("--window-h", type=int, default=168)
    parser.add_argument("--headroom", type=float, default=1.3)
    parser.add_argument("--slow-budget", type=float, default=0.0)
    parser.add_argument("--min-saving", type=float, default=1.0, help="min_saving_per_day")
    parser.add_argument("--shards", type=int, default=100, help="synthetic shards")
    parser.add_argument("--relief-spread", type=float, default=1.0, help="relief_spread")
    parser.add_argument(
        "--measured-spread", action="store_true", help="planning.measured_spread (yhat_sd)"
    )
    parser.add_argument(
        "--no-burst-risk", action="store_true", help="planning.burst_risk off (default on)"
    )
    parser.add_argument(
        "--hold-hosts-with-room", action="store_true", help="planning.hold_hosts_with_room"
    )
    parser.add_argument(
        "--level-shift-hours", type=int, default=0, help="forecast level_shift_hours (0: off)"
    )
    parser.add_argument(
        "--no-global-model", action="store_true", help="forecast.global_model off (default on)"
    )
    args = parser.parse_args()
    policy = PolicyFile(
        forecast=ForecastPolicy(
            slow_budget_seconds=args.slow_budget,
            level_shift_hours=args.level_shift_hours,
            global_model=not args.no_global_model,
        ),
        planning=PlanningPolicy(
            max_moves_per_cycle=10,
            min_saving_per_day=args.min_saving,
            relief_spread=args.relief_spread,
            measured_spread=args.measured_spread,
            burst_risk=not args.no_burst_risk,
            hold_hosts_with_room=args.hold_hosts_with_room,
        ),
    )
    print(
        "| trace | seed | step h | headroom | static cost | predictive cost | oracle cost | "
        "LP bound | share of hindsight saving | overload sh-h pred / reactive | "
        "migrations pred / reactive | targets | s |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    details = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        hours = 72 + args.window_h
        ids, demand = (
            bitbrains_demand(hours)
            if args.trace == "bitbrains"
            else synthetic_demand(hours, seed, args.shards)
        )
        data = planning_data(ids, demand, args.headroom, seed)
        for step in [int(s) for s in args.steps.split(",")]:
            began = time.perf_counter()
            table = policy_backtest(data, policy, BacktestOptions(step_h=step, time_limit_s=20))
            by = {r["policy"]: r for r in table.iter_rows(named=True)}
            pred, react = by["predictive"], by["reactive"]
            share = pred["saving_share"]
            met = [
                share is not None and share >= 0.9,
                pred["overload_shard_hours"] <= react["overload_shard_hours"] / 3,
                pred["migrations"] <= react["migrations"],
            ]
            print(
                f"| {args.trace} ({len(ids)}) | {seed} | {step} | {args.headroom} | "
                f"{by['static']['total_cost']:.2f} | {pred['total_cost']:.2f} | "
                f"{by['oracle']['total_cost']:.2f} | {pred['lower_bound']:.2f} | "
                f"{'-' if share is None else f'{100 * share:.0f} %'} | "
                f"{pred['overload_shard_hours']} / {react['overload_shard_hours']} | "
                f"{pred['migrations']} / {react['migrations']} | "
                f"{' '.join('met' if m else 'NOT' for m in met)} | "
                f"{time.perf_counter() - began:.0f} |",
                flush=True,
            )
            details += [
                f"| {args.trace} ({len(ids)}) | {seed} | {step} | {args.headroom} | "
                f"{row['policy']} | {row['total_cost']:.2f} | {row['overload_shard_hours']} | "
                f"{row['migrations']} |"
                for row in by.values()
            ]
    print(
        "\n| trace | seed | step h | headroom | policy | total cost | overload sh-h | "
        "migrations |\n|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(details))


if __name__ == "__main__":
    main()
