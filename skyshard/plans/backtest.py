"""What-if over stored history: replay the hours with five placement policies and compare
total cost, overload shard-hours, migrations and bytes moved (`plan.policy_backtest`).

Policies decide every `step_h` hours from what they could know then: static (never move),
reactive (descheduler-like: a host above 80 % cpu sheds its largest shards to hosts that stay
below 50 %), greedy (each shard to the cheapest host, capacity-blind), predictive (the
placement MILP on forecast demand) and oracle (the same MILP on the actual future).

Kept cheap on purpose: the predictive policy's forecasts inside the replay are seasonal naive
(same hour yesterday) plus the last day's drift, with an upper bound from recent residuals,
not Prophet; prices are carried forward. Cost = cpu used x price + migrations (egress and
downtime) + overload (an overloaded shard-hour loses OVERLOAD_SHARE of the hour to downtime).
Only cpu and the policy's capacity, cost and budget rules are replayed; latency and data-class
rules are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from skyshard.config.policy import PolicyFile
from skyshard.placement import (
    Budget,
    CandidateTable,
    HostSupply,
    PlacementInput,
    ShardDemand,
    solve_placement,
)
from skyshard.scoring.candidates import GIB, downtime_seconds
from skyshard.scoring.data import PlanningData

POLICIES = ("static", "reactive", "greedy_cheapest", "predictive", "oracle")
OVERLOAD_SHARE = 0.1
REACTIVE_HIGH, REACTIVE_TARGET = 0.8, 0.5
SEASON_H = 24

BACKTEST_SCHEMA = {
    "policy": pl.String,
    "total_cost": pl.Float64,
    "run_cost": pl.Float64,
    "migration_cost": pl.Float64,
    "overload_cost": pl.Float64,
    "overload_shard_hours": pl.Int64,
    "migrations": pl.Int64,
    "bytes_moved": pl.Int64,
    "hours": pl.Int64,
    "step_h": pl.Int64,
}


@dataclass(frozen=True)
class History:
    """Dense arrays: demand (shards, hours) cpu, price (hosts, hours) per cpu-hour."""

    shard_ids: list[str]
    host_ids: list[str]
    demand: np.ndarray
    price: np.ndarray
    capacity: np.ndarray  # (hosts,)
    provider: np.ndarray  # (hosts,) provider index
    egress: np.ndarray  # (providers,)
    state_gb: np.ndarray  # (shards,)
    start: np.ndarray  # (shards,) host index


def history_arrays(data: PlanningData) -> History:
    usage = data.usage.select("shard_id", "hour", "cpu_avg")
    hours = sorted(usage["hour"].unique())
    shard_ids = sorted(data.shards["shard_id"])
    hosts = data.hosts.sort("host_id")
    host_ids = hosts["host_id"].to_list()
    providers = sorted(data.providers["provider_id"])
    demand = (
        pl.DataFrame({"shard_id": shard_ids})
        .join(pl.DataFrame({"hour": hours}), how="cross")
        .join(usage, on=["shard_id", "hour"], how="left")
        .with_columns(pl.col("cpu_avg").forward_fill().over("shard_id").fill_null(0.0))
        .sort("shard_id", "hour")["cpu_avg"]
        .to_numpy()
        .reshape(len(shard_ids), len(hours))
    )
    listed = data.providers.select("provider_id", "list_price_per_cpu_hour")
    price = (
        hosts.select("host_id", "provider_id", "region")
        .join(pl.DataFrame({"hour": hours}), how="cross")
        .join(data.prices, on=["provider_id", "region", "hour"], how="left")
        .join(listed, on="provider_id")
        .sort("host_id", "hour")
        .with_columns(pl.col("price_per_cpu_hour").forward_fill().over("host_id"))
        .select(pl.coalesce("price_per_cpu_hour", "list_price_per_cpu_hour"))
        .to_series()
        .to_numpy()
        .reshape(len(host_ids), len(hours))
    )
    shards = data.shards.sort("shard_id")
    host_index = {h: i for i, h in enumerate(host_ids)}
    egress = dict(data.providers.select("provider_id", "egress_per_gb").iter_rows())
    return History(
        shard_ids=shard_ids,
        host_ids=host_ids,
        demand=demand,
        price=price,
        capacity=hosts["cpu_capacity"].to_numpy().astype(float),
        provider=np.array([providers.index(p) for p in hosts["provider_id"]]),
        egress=np.array([egress[p] for p in providers], dtype=float),
        state_gb=shards["state_gb"].to_numpy().astype(float),
        start=np.array([host_index[h] for h in shards["current_host_id"]]),
    )


def _move_costs(h: History, current: np.ndarray, dcps: float) -> np.ndarray:
    """(shards, hosts) one-off cost of moving each shard from `current` to each host."""
    crossing = h.provider[None, :] != h.provider[current][:, None]
    egress = h.state_gb[:, None] * h.egress[h.provider[current]][:, None] * crossing
    cost = egress + downtime_seconds(h.state_gb)[:, None] * dcps
    cost[np.arange(len(current)), current] = 0.0
    return cost


def _reactive(h: History, current: np.ndarray, t: int) -> np.ndarray:
    placed = current.copy()
    now = h.demand[:, t - 1]
    load = np.bincount(placed, weights=now, minlength=len(h.host_ids))
    for host in np.flatnonzero(load > REACTIVE_HIGH * h.capacity):
        for shard in np.flatnonzero(placed == host)[np.argsort(-now[placed == host])]:
            if load[host] <= REACTIVE_HIGH * h.capacity[host]:
                break
            after = (load + now[shard]) / h.capacity
            after[host] = np.inf
            target = int(np.argmin(after))
            if after[target] < REACTIVE_TARGET:
                placed[shard] = target
                load[host] -= now[shard]
                load[target] += now[shard]
    return placed


def _greedy(h: History, current: np.ndarray, t: int) -> np.ndarray:
    cheapest = np.argmin(h.price[:, t - 1])
    price_now = h.price[current, t - 1]
    return np.where(h.price[cheapest, t - 1] < price_now, cheapest, current)


def _forecast(h: History, t: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Seasonal naive with the last day's drift: (point mean, upper peak) per shard."""
    past = h.demand[:, :t]
    ahead = np.arange(step)
    base = past[:, t - SEASON_H + (ahead % SEASON_H)] if t >= SEASON_H else past[:, -1:]
    drift = 0.0
    if t >= 2 * SEASON_H:
        drift = past[:, -SEASON_H:].mean(axis=1) - past[:, -2 * SEASON_H : -SEASON_H].mean(1)
        drift = drift[:, None] * (1 + ahead[None, :]) / SEASON_H
    point = base + drift
    residual = np.zeros(len(h.shard_ids))
    if t >= 3 * SEASON_H:
        errors = past[:, -2 * SEASON_H :] - past[:, -3 * SEASON_H : -SEASON_H]
        residual = np.quantile(np.abs(errors), 0.9, axis=1)
    return point.mean(axis=1), (point + residual[:, None]).max(axis=1)


def _solve(
    h: History,
    current: np.ndarray,
    mean_demand: np.ndarray,
    peak: np.ndarray,
    price: np.ndarray,
    step: int,
    policy: PolicyFile,
) -> np.ndarray:
    n_s, n_h = len(h.shard_ids), len(h.host_ids)
    move = _move_costs(h, current, policy.planning.downtime_cost_per_second)
    run = mean_demand[:, None] * price[None, :] * step
    table = CandidateTable(
        shard_ids=np.repeat(np.array(h.shard_ids, dtype=object), n_h),
        host_ids=np.tile(np.array(h.host_ids, dtype=object), n_s),
        terms={"run_cost": run.ravel(), "migration_cost": move.ravel()},
        allowed=np.ones(n_s * n_h, dtype=bool),
        blocked_by=np.full(n_s * n_h, None, dtype=object),
    )
    problem = PlacementInput(
        shards=[
            ShardDemand(s, h.host_ids[current[i]], cpu=float(peak[i]), mem_gb=0.0)
            for i, s in enumerate(h.shard_ids)
        ],
        hosts=[
            HostSupply(x, str(h.provider[j]), "", float(h.capacity[j]), 0.0)
            for j, x in enumerate(h.host_ids)
        ],
        candidates=table,
        budget=Budget(
            max_moves=policy.planning.max_moves_per_cycle,
            min_saving_per_move=policy.planning.min_saving_per_day * step / 24,
        ),
    )
    result = solve_placement(problem)
    if not result.assignment:  # infeasible even with moves: keep what runs
        return current
    index = {x: j for j, x in enumerate(h.host_ids)}
    return np.array([index[result.assignment[s]] for s in h.shard_ids])


def replay(
    h: History,
    name: str,
    policy: PolicyFile,
    step_h: int = 6,
    warmup_h: int = 72,
) -> dict:
    """Total cost, overload shard-hours, migrations and bytes of one policy over the history."""
    dcps = policy.planning.downtime_cost_per_second
    hours = h.demand.shape[1]
    current = h.start.copy()
    totals = dict.fromkeys(("run", "migration", "overload"), 0.0)
    overload_hours = migrations = moved = 0
    for t0 in range(warmup_h, hours, step_h):
        step = min(step_h, hours - t0)
        window = slice(t0, t0 + step)
        if name == "reactive":
            nxt = _reactive(h, current, t0)
        elif name == "greedy_cheapest":
            nxt = _greedy(h, current, t0)
        elif name == "predictive":
            mean, peak = _forecast(h, t0, step)
            nxt = _solve(h, current, mean, peak, h.price[:, t0 - 1], step, policy)
        elif name == "oracle":
            actual = h.demand[:, window]
            nxt = _solve(
                h, current, actual.mean(1), actual.max(1), h.price[:, window].mean(1), step, policy
            )
        else:
            nxt = current
        moving = np.flatnonzero(nxt != current)
        totals["migration"] += float(_move_costs(h, current, dcps)[moving, nxt[moving]].sum())
        migrations += len(moving)
        moved += int((h.state_gb[moving] * GIB).sum())
        current = nxt
        demand = h.demand[:, window]
        totals["run"] += float((demand * h.price[current, window]).sum())
        for k in range(step):
            load = np.bincount(current, weights=demand[:, k], minlength=len(h.host_ids))
            over = load > h.capacity + 1e-9
            overload_hours += int(over[current].sum())
    totals["overload"] = overload_hours * 3600 * OVERLOAD_SHARE * dcps
    return {
        "policy": name,
        "total_cost": sum(totals.values()),
        "run_cost": totals["run"],
        "migration_cost": totals["migration"],
        "overload_cost": totals["overload"],
        "overload_shard_hours": overload_hours,
        "migrations": migrations,
        "bytes_moved": moved,
        "hours": max(0, hours - warmup_h),
        "step_h": step_h,
    }


def policy_backtest(
    data: PlanningData, policy: PolicyFile, step_h: int = 6, warmup_h: int = 72
) -> pl.DataFrame:
    """One row per policy (columns BACKTEST_SCHEMA), in POLICIES order."""
    h = history_arrays(data)
    if h.demand.shape[1] <= warmup_h:
        raise ValueError(
            f"policy backtest needs more than warmup_h={warmup_h} hours of usage history, "
            f"marts have {h.demand.shape[1]}"
        )
    rows = [replay(h, name, policy, step_h, warmup_h) for name in POLICIES]
    return pl.DataFrame(rows, schema=BACKTEST_SCHEMA, orient="row")
