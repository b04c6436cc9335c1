"""Where the backtest's overloaded shard-hours come from on the synthetic sky: the injected
one-hour spikes (2.5x, 1 % of hours; unforecastable by construction) or the rest (daily and
weekly cycles, level steps, noise). Also replays a "spike-blind oracle": the planner fed the
actual future without the spikes, i.e. everything a forecaster could know; its overload is
what forecast-driven planning can reach on this sky.

Run: .venv/bin/python -m bench.bench_overload_sources [--headroom 1.2] [--seeds 0,1,2,3,4]
     [--policies static,reactive,predictive,blind,oracle]
"""

from __future__ import annotations

import argparse

import numpy as np
import polars as pl

from bench.bench_backtest import SPIKE, planning_data, synthetic_sky
from skyshard.config.policy import ForecastPolicy, PlanningPolicy, PolicyFile
from skyshard.plans.backtest import (
    BacktestOptions,
    History,
    ReplayPlanner,
    history_arrays,
    replay,
)
from skyshard.scoring import PlanningData

HOURS, SHARDS = 240, 100
PLANNED = ("predictive", "oracle", "blind")


def without_spikes(data: PlanningData, h: History, calm: np.ndarray) -> PlanningData:
    """`data` with usage (and free capacity) as if no shard had spiked; `calm` is the demand
    without spikes in `h`'s shard and hour order."""
    values = pl.DataFrame(
        {
            "shard_id": np.repeat(h.shard_ids, len(h.hours)),
            "hour": h.hours * len(h.shard_ids),
            "calm": calm.ravel(),
        }
    )
    usage = (
        data.usage.join(values, on=["shard_id", "hour"], how="left")
        .with_columns(cpu_avg=pl.coalesce("calm", "cpu_avg"))
        .select(data.usage.columns)
    )
    used = usage.group_by("host_id", "hour").agg(pl.col("cpu_avg").sum())
    capacity = (
        data.capacity.join(used, on=["host_id", "hour"], how="left")
        .with_columns(cpu_free=pl.col("cpu_capacity") - pl.col("cpu_avg").fill_null(0.0))
        .select(data.capacity.columns)
    )
    return PlanningData(**{**data.__dict__, "usage": usage, "capacity": capacity})


class SpikeSplit:
    """A replay observer: overloaded shard-hours a spike caused (over, but not without the
    spikes) and those left without the spikes, at each hour's placement."""

    def __init__(self, h: History, calm: np.ndarray) -> None:
        self.h, self.calm = h, calm
        self.counts = np.zeros(2, dtype=int)

    def __call__(self, t: int, current: np.ndarray) -> None:
        hosts = len(self.h.host_ids)
        load = np.bincount(current, weights=self.h.demand[:, t], minlength=hosts)
        base = np.bincount(current, weights=self.calm[:, t], minlength=hosts)
        over, over_calm = load > self.h.capacity + 1e-9, base > self.h.capacity + 1e-9
        self.counts += [int((over & ~over_calm)[current].sum()), int(over_calm[current].sum())]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--headroom", type=float, default=1.2)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--policies", default="static,reactive,predictive,blind,oracle")
    args = parser.parse_args()
    policy = PolicyFile(
        forecast=ForecastPolicy(slow_budget_seconds=0),
        planning=PlanningPolicy(max_moves_per_cycle=10, min_saving_per_day=1.0),
    )
    options = BacktestOptions(step_h=6, time_limit_s=20)
    print(
        "| seed | policy | total cost | overload sh-h | of which spike-caused | left without "
        "spikes | moves |\n|---|---|---|---|---|---|---|"
    )
    totals: dict[str, np.ndarray] = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        ids, demand, spikes = synthetic_sky(HOURS, seed, SHARDS)
        data = planning_data(ids, demand, args.headroom, seed)
        h = history_arrays(data)
        row_of = {shard: i for i, shard in enumerate(ids)}
        order = [row_of[shard] for shard in h.shard_ids]  # h's rows are sorted by shard id
        calm = (demand / np.where(spikes, SPIKE, 1.0))[order]
        for name in args.policies.split(","):
            split = SpikeSplit(h, calm)
            source = without_spikes(data, h, calm) if name == "blind" else data
            planner = ReplayPlanner(source, h, policy, options) if name in PLANNED else None
            row = replay(h, "oracle" if name == "blind" else name, policy, options, planner, split)
            counts = np.array(
                [row["total_cost"], row["overload_shard_hours"], *split.counts, row["migrations"]]
            )
            totals[name] = totals.get(name, np.zeros(5)) + counts
            print(f"| {seed} | {name} | {_cells(counts)} |", flush=True)
    for name, c in totals.items():
        print(f"| **sum** | {name} | {_cells(c)} |")


def _cells(counts: np.ndarray) -> str:
    return f"{counts[0]:,.2f} | " + " | ".join(f"{int(c):,}" for c in counts[1:])


if __name__ == "__main__":
    main()
