"""What-if over stored history: replay a window with several placement policies and compare
total cost, overload shard-hours, migrations and bytes moved (`plan.policy_backtest`).

Policies decide every `step_h` hours from what they could know then:
- static: never move;
- reactive: descheduler-like, a host above 80 % cpu sheds its largest shards to hosts that
  stay below 50 %;
- greedy_cheapest: each shard to the cheapest host, capacity-blind;
- predictive: the live planning cycle itself (`plan_forecasts` then `plan_cycle`, same
  forecaster, scoring, elastic placement and policy, hysteresis cycles carried between steps)
  on the history before the step, with the shards where the replay has put them;
- oracle (hindsight): the same planning cycle fed the actual future as its forecast.

Replayed outcomes are measured on cpu: cost = cpu used x the hour's price + migrations (egress
and downtime) + overload (an overloaded shard-hour loses `scoring.overload.OVERLOAD_SHARE` of
the hour to downtime, as the planner's `headroom_risk` term prices it). `lower_bound` is a
bound no policy can beat: per step, the LP relaxation of placing the step's actual demand
within capacity at the step's actual prices, or, if cheaper, every shard at its cheapest host
plus one overload shard-hour (any policy that overloads pays at least that); migrations are
free. `saving_share` is a policy's saving over static divided by the hindsight oracle's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from scipy import sparse
from scipy.optimize import linprog

from skyshard.config.policy import PolicyFile
from skyshard.forecast.run import FORECAST_SCHEMA
from skyshard.placement import SolveOptions
from skyshard.plans.cycle import plan_cycle, plan_forecasts
from skyshard.scoring import forecast_input
from skyshard.scoring.candidates import GIB, downtime_seconds
from skyshard.scoring.data import SHARD_METRICS, PlanningData
from skyshard.scoring.overload import overload_unit_cost
from skyshard.scoring.trust_inputs import neutral_trust_scores

POLICIES = ("static", "reactive", "greedy_cheapest", "predictive", "oracle")
REACTIVE_HIGH, REACTIVE_TARGET = 0.8, 0.5

Forecaster = Callable[[PlanningData, PolicyFile], pl.DataFrame]

BACKTEST_SCHEMA = {
    "policy": pl.String,
    "total_cost": pl.Float64,
    "run_cost": pl.Float64,
    "migration_cost": pl.Float64,
    "overload_cost": pl.Float64,
    "overload_shard_hours": pl.Int64,
    "migrations": pl.Int64,
    "bytes_moved": pl.Int64,
    "saving_share": pl.Float64,
    "lower_bound": pl.Float64,
    "hours": pl.Int64,
    "step_h": pl.Int64,
}


def live_forecasts(data: PlanningData, policy: PolicyFile) -> pl.DataFrame:
    """The planning cycle's forecaster, as the predictive policy calls it."""
    return plan_forecasts(data, policy).forecasts


@dataclass(frozen=True)
class BacktestOptions:
    """`window_h` hours are replayed after `warmup_h` hours of history (None: to the end);
    every policy decides each `step_h` hours; each planning cycle gets `time_limit_s`."""

    step_h: int = 6
    warmup_h: int = 72
    window_h: int | None = None
    policies: tuple[str, ...] = POLICIES
    time_limit_s: float = 30.0
    forecaster: Forecaster = field(default=live_forecasts)

    def __post_init__(self) -> None:
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown:
            raise ValueError(f"policies {unknown}: expected some of {', '.join(POLICIES)}")
        for name in ("step_h", "warmup_h"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} = {getattr(self, name)} must be >= 1")
        if self.window_h is not None and self.window_h < 1:
            raise ValueError(f"window_h = {self.window_h} must be >= 1")


@dataclass(frozen=True)
class History:
    """Dense arrays: demand (shards, hours) cpu, price (hosts, hours) per cpu-hour."""

    hours: list[datetime]
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
        hours=hours,
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


def history_before(data: PlanningData, end: datetime, placement: Mapping[str, str]) -> PlanningData:
    """The marts as they would have read just before `end`, with the shards where `placement`
    puts them: usage, capacity and prices before `end`; host free capacity as if the shards
    had always run where they are now (other tenants' use unchanged)."""
    hosts = data.hosts.select("host_id", "provider_id", "region")
    where = pl.DataFrame({"shard_id": list(placement), "host_id": list(placement.values())}).join(
        hosts, on="host_id"
    )
    shards = (
        data.shards.drop("current_host_id", "current_provider_id", "current_region")
        .join(
            where.rename(
                {
                    "host_id": "current_host_id",
                    "provider_id": "current_provider_id",
                    "region": "current_region",
                }
            ),
            on="shard_id",
            how="left",
        )
        .select(data.shards.columns)
    )
    usage = data.usage.filter(pl.col("hour") < end)
    moved = (
        usage.drop("host_id", "provider_id")
        .join(where.select("shard_id", "host_id", "provider_id"), on="shard_id", how="left")
        .select(usage.columns)
    )
    capacity = data.capacity.filter(pl.col("hour") < end)
    if not capacity.is_empty():
        ours = [f"{m}_avg" for m in SHARD_METRICS]

        def load(frame: pl.DataFrame, suffix: str) -> pl.DataFrame:
            return frame.group_by("host_id", "hour").agg(
                [pl.col(c).sum().alias(c.replace("_avg", suffix)) for c in ours]
            )

        capacity = (
            capacity.join(load(usage, "_was"), on=["host_id", "hour"], how="left")
            .join(load(moved, "_now"), on=["host_id", "hour"], how="left")
            .with_columns(
                [
                    (
                        pl.col(f"{m}_free")
                        + pl.col(f"{m}_was").fill_null(0.0)
                        - pl.col(f"{m}_now").fill_null(0.0)
                    ).alias(f"{m}_free")
                    for m in SHARD_METRICS
                ]
            )
            .select(data.capacity.columns)
        )
    return PlanningData(
        providers=data.providers,
        hosts=data.hosts,
        shards=shards,
        dependencies=data.dependencies,
        usage=moved,
        capacity=capacity,
        prices=data.prices.filter(pl.col("hour") < end),
        incidents=data.incidents,
        latency=data.latency,
    )


def hindsight_forecasts(data: PlanningData, start: datetime, horizon_h: int) -> pl.DataFrame:
    """A forecast table that is the actual future: every series' values in the `horizon_h`
    hours from `start`, with point, lower and upper bound all equal to what happened."""
    end = start + timedelta(hours=horizon_h)
    future = PlanningData(
        **{
            **data.__dict__,
            "usage": data.usage.filter(pl.col("hour").is_between(start, end, closed="left")),
            "capacity": data.capacity.filter(pl.col("hour").is_between(start, end, closed="left")),
            "prices": data.prices.filter(pl.col("hour").is_between(start, end, closed="left")),
        }
    )
    trained = pl.lit(start - timedelta(hours=1)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    rows = forecast_input(future).select(
        "series_id",
        "ts",
        yhat="value",
        yhat_lower="value",
        yhat_upper="value",
        yhat_sd=pl.lit(0.0),
        model=pl.lit("hindsight"),
        reason=pl.lit("actual future"),
        trained_at=trained,
        train_start=trained,
        train_end=trained,
        interval=pl.lit(1.0),
        input_fingerprint=pl.lit("hindsight"),
    )
    return rows.cast(FORECAST_SCHEMA).select(list(FORECAST_SCHEMA))


class ReplayPlanner:
    """The live planning cycle, stepped through the replay with its hysteresis state."""

    def __init__(
        self, data: PlanningData, h: History, policy: PolicyFile, options: BacktestOptions
    ) -> None:
        self.data, self.h, self.policy, self.options = data, h, policy, options
        self.trust = neutral_trust_scores(data.providers["provider_id"], policy.trust.neutral_score)
        self.cycles: dict[str, int] = {}

    def plan(self, current: np.ndarray, t: int, hindsight: bool) -> np.ndarray:
        h, policy = self.h, self.policy
        now = h.hours[t]
        placement = {s: h.host_ids[current[i]] for i, s in enumerate(h.shard_ids)}
        past = history_before(self.data, now, placement)
        if hindsight:
            # the future as it happened, with the shards where the replay has put them (free
            # capacity follows the placement, as in the history)
            horizon = policy.forecast.horizon_hours
            future = history_before(self.data, now + timedelta(hours=horizon), placement)
            forecasts = hindsight_forecasts(future, now, horizon)
        else:
            forecasts = self.options.forecaster(past, policy)
        cycle = plan_cycle(
            past,
            forecasts,
            policy,
            self.trust,
            self.cycles,
            created_at=now,
            options=SolveOptions(time_limit_s=self.options.time_limit_s),
        )
        index = {x: j for j, x in enumerate(h.host_ids)}
        nxt = current.copy()
        for move in cycle.result.moves:
            nxt[h.shard_ids.index(move.shard_id)] = index[move.to_host]
        for i, shard in enumerate(h.shard_ids):
            if nxt[i] != current[i]:
                self.cycles[shard] = 0
            elif shard in self.cycles:
                self.cycles[shard] += 1
        return nxt


def _decide(
    name: str, h: History, current: np.ndarray, t: int, planners: dict[str, ReplayPlanner]
) -> np.ndarray:
    if name == "reactive":
        return _reactive(h, current, t)
    if name == "greedy_cheapest":
        return _greedy(h, current, t)
    if name in ("predictive", "oracle"):
        return planners[name].plan(current, t, hindsight=name == "oracle")
    return current


def _overload_unit(policy: PolicyFile) -> float:
    return overload_unit_cost(policy.planning.downtime_cost_per_second)


def replay(
    h: History,
    name: str,
    policy: PolicyFile,
    options: BacktestOptions,
    planner: ReplayPlanner | None = None,
    observe: Callable[[int, np.ndarray], None] | None = None,
) -> dict:
    """Total cost, overload shard-hours, migrations and bytes of one policy over the window;
    `observe(hour index, host index of every shard)` sees each replayed hour's placement."""
    dcps = policy.planning.downtime_cost_per_second
    first, last = _window(h, options)
    current = h.start.copy()
    totals = dict.fromkeys(("run", "migration", "overload"), 0.0)
    overload_hours = migrations = moved = 0
    planners = {name: planner} if planner is not None else {}
    for t0 in range(first, last, options.step_h):
        step = min(options.step_h, last - t0)
        window = slice(t0, t0 + step)
        nxt = _decide(name, h, current, t0, planners)
        moving = np.flatnonzero(nxt != current)
        totals["migration"] += float(_move_costs(h, current, dcps)[moving, nxt[moving]].sum())
        migrations += len(moving)
        moved += int((h.state_gb[moving] * GIB).sum())
        current = nxt
        demand = h.demand[:, window]
        totals["run"] += float((demand * h.price[current, window]).sum())
        for k in range(step):
            if observe is not None:
                observe(t0 + k, current)
            load = np.bincount(current, weights=demand[:, k], minlength=len(h.host_ids))
            over = load > h.capacity + 1e-9
            overload_hours += int(over[current].sum())
    totals["overload"] = overload_hours * _overload_unit(policy)
    return {
        "policy": name,
        "total_cost": sum(totals.values()),
        "run_cost": totals["run"],
        "migration_cost": totals["migration"],
        "overload_cost": totals["overload"],
        "overload_shard_hours": overload_hours,
        "migrations": migrations,
        "bytes_moved": moved,
        "hours": last - first,
        "step_h": options.step_h,
    }


def _window(h: History, options: BacktestOptions) -> tuple[int, int]:
    hours = len(h.hours)
    last = hours if options.window_h is None else min(hours, options.warmup_h + options.window_h)
    return options.warmup_h, last


def lower_bound(h: History, policy: PolicyFile, options: BacktestOptions) -> float:
    """A total cost no policy can go below over the window (see the module docstring)."""
    first, last = _window(h, options)
    n_s, n_h = len(h.shard_ids), len(h.host_ids)
    total = 0.0
    for t0 in range(first, last, options.step_h):
        window = slice(t0, min(t0 + options.step_h, last))
        demand, price = h.demand[:, window], h.price[:, window]
        run = demand @ price.T  # (shards, hosts): the step's run cost on each host
        relaxed = float(run.min(axis=1).sum()) + _overload_unit(policy)
        hours = demand.shape[1]
        # x[s, h] flattened s-major; per hour and host: sum_s demand[s, k] x[s, h] <= capacity
        rows = (np.arange(hours)[:, None, None] * n_h + np.arange(n_h)[None, None, :]).repeat(
            n_s, axis=1
        )
        cols = np.broadcast_to(
            (np.arange(n_s)[:, None] * n_h + np.arange(n_h)[None, :])[None], rows.shape
        )
        vals = np.broadcast_to(demand.T[:, :, None], rows.shape)
        capacity_rows = sparse.csr_matrix(
            (vals.ravel(), (rows.ravel(), cols.ravel())), shape=(hours * n_h, n_s * n_h)
        )
        assignment = sparse.kron(sparse.eye(n_s), np.ones((1, n_h)), format="csr")
        lp = linprog(
            run.ravel(),
            A_ub=capacity_rows,
            b_ub=np.tile(h.capacity, hours),
            A_eq=assignment,
            b_eq=np.ones(n_s),
            bounds=(0, 1),
            method="highs",
        )
        total += min(float(lp.fun), relaxed) if lp.status == 0 else relaxed
    return total


def policy_backtest(
    data: PlanningData, policy: PolicyFile, options: BacktestOptions | None = None
) -> pl.DataFrame:
    """One row per policy (columns BACKTEST_SCHEMA), in `options.policies` order."""
    options = options or BacktestOptions()
    h = history_arrays(data)
    if len(h.hours) <= options.warmup_h:
        raise ValueError(
            f"policy backtest needs more than warmup_h={options.warmup_h} hours of usage "
            f"history, marts have {len(h.hours)}"
        )
    rows = [
        replay(
            h,
            name,
            policy,
            options,
            ReplayPlanner(data, h, policy, options) if name in ("predictive", "oracle") else None,
        )
        for name in options.policies
    ]
    bound = lower_bound(h, policy, options)
    static = (
        next(
            (r["total_cost"] for r in rows if r["policy"] == "static"),
            None,
        )
        or replay(h, "static", policy, options)["total_cost"]
    )
    oracle = next((r["total_cost"] for r in rows if r["policy"] == "oracle"), None)
    for row in rows:
        row["lower_bound"] = bound
        saving = None if oracle is None or static - oracle <= 1e-9 else static - oracle
        row["saving_share"] = None if saving is None else (static - row["total_cost"]) / saving
    return pl.DataFrame(rows, schema=BACKTEST_SCHEMA, orient="row")


def backtest_chart(table: pl.DataFrame, path: Path, title: str = "policy backtest") -> Path:
    """A PNG with one bar panel per measure: total cost, overload shard-hours, migrations."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    measures = [
        ("total_cost", "total cost"),
        ("overload_shard_hours", "overload shard-hours"),
        ("migrations", "migrations"),
    ]
    figure, axes = plt.subplots(1, len(measures), figsize=(4 * len(measures), 3.6))
    policies = table["policy"].to_list()
    for axis, (column, label) in zip(axes, measures, strict=True):
        values = table[column].to_list()
        axis.bar(policies, values, color="#4c72b0")
        axis.set_title(label)
        axis.tick_params(axis="x", labelrotation=45)
        if column == "total_cost":
            axis.axhline(table["lower_bound"][0], color="#c44e52", linestyle="--", label="LP bound")
            axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
