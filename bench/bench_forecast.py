"""Forecast accuracy out of sample and throughput, on real Bitbrains VM CPU traces and on the
simulator.

Run: .venv/bin/python bench/bench_forecast.py [--data bitbrains sim] [--shards N] [--days D]
       [--seeds S ...] [--slow-models M ...] [--slow-budget SECONDS] [--processes P]
       [--global-model | --no-global-model]

Each series is backtested at `backtest_cutoffs` (7) rolling origins, 24 h horizon, MASE scaled
by the in-sample season-24 naive. Out of sample: models are chosen on the earlier origins and
scored on the later ones (`mase_held_out`); every figure below that says "held out" is on those
later origins only. "Best single cheap" is the cheap candidate with the lowest held-out median
when used for every series, on the series where every cheap candidate was scored. Coverage:
share of held-out actuals inside bounds calibrated on the earlier origins. Wall time counts
everything `forecast_series` does, worker start-up included. With the global model on, its own
held-out median on those series is printed too (it is a candidate, not a cheap one).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import polars as pl

from skyshard.config.policy import ForecastPolicy
from skyshard.forecast import SeriesId, forecast_series
from skyshard.forecast.candidates import BASELINE, CHEAP
from skyshard.forecast.global_model import GLOBAL
from skyshard.forecast.series_id import SeriesKind, series_id_expr
from skyshard.scoring.data import HOST_RESOURCES, SHARD_METRICS

ROOT = Path(__file__).resolve().parents[1]
# `../shared` next to the checkout (a worktree sits one level deeper).
BITBRAINS = next(
    (
        p
        for p in (ROOT.parent / "shared/data/bitbrains", ROOT.parents[1] / "shared/data/bitbrains")
        if p.exists()
    ),
    ROOT.parent / "shared/data/bitbrains",
)


def bitbrains_frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    """CPU usage (MHz) per VM, 5-minute samples (`forecast_series` averages them per hour),
    and each VM's ceiling: its cores times the MHz per core."""
    trace = pl.read_parquet(BITBRAINS / "trace.parquet")
    series_id = series_id_expr(SeriesKind.SHARD, pl.concat_str(pl.lit("vm-"), pl.col("id")), "cpu")
    frame = trace.select(series_id=series_id, ts="timestamp", value="cpu_usage")
    meta = pl.read_csv(BITBRAINS / "meta.csv", schema_overrides={"id": pl.String})
    limits = meta.select(
        series_id=series_id,
        capacity=pl.col("cpu_count") * pl.col("cpu_capacity"),
        measures_free=pl.lit(False),
        ceiling=pl.col("cpu_count") * pl.col("cpu_capacity"),
    )
    return frame, limits


def sim_frames(shards: int, days: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The simulator's observed shard demand and host free capacity (hourly samples), with
    each series' ceiling (the host's capacity)."""
    from skyshard.sim.params import SkyParams
    from skyshard.sim.sky import simulate

    providers = min(12, max(2, shards // 100))
    hosts = max(2, shards // (5 * providers))
    params = SkyParams(providers, hosts, shards, days=days, step_minutes=60, seed=seed)
    with tempfile.TemporaryDirectory() as captures:
        world = simulate(params, Path(captures))
    n = world.observed
    ts = pl.Series(world.seconds[:n] * 1_000_000).cast(pl.Datetime("us", "UTC"))
    host_of = {h: i for i, h in enumerate(world.host_ids)}
    parts, limits = [], []
    for metric in SHARD_METRICS:
        usage = world.shard_usage[metric][:, :n]
        for row, shard in enumerate(world.shards):
            sid = str(SeriesId.shard(shard.id, metric))
            parts.append(pl.DataFrame({"series_id": sid, "ts": ts, "value": usage[row]}))
            ceiling = float(world.host_capacity[metric][host_of[shard.current_host]])
            limits.append((sid, ceiling, False, ceiling))
    for resource in HOST_RESOURCES:
        free = world.host_free(resource)[:, :n]
        for row, host in enumerate(world.host_ids):
            sid = str(SeriesId.host(host, resource))
            parts.append(pl.DataFrame({"series_id": sid, "ts": ts, "value": free[row]}))
            capacity = float(world.host_capacity[resource][row])
            if capacity > 0:
                limits.append((sid, capacity, True, capacity))
    schema = ["series_id", "capacity", "measures_free", "ceiling"]
    return pl.concat(parts), pl.DataFrame(limits, schema=schema, orient="row")


def held_out_by_model(backtests: pl.DataFrame) -> pl.DataFrame:
    """Per series and cheap candidate (and the global model), the mean MASE over the held-out
    origins, where the candidate was scored at every one of them."""
    held = backtests.filter("held_out")
    origins = held.group_by("series_id").agg(n=pl.col("cutoff").n_unique())
    return (
        held.filter(pl.col("model").is_in([*CHEAP, GLOBAL]))
        .group_by("series_id", "model")
        .agg(mase=pl.col("mase").mean(), scored=pl.col("mase").is_not_null().sum())
        .join(origins, on="series_id")
        .filter(pl.col("scored") == pl.col("n"))
        .pivot(on="model", index="series_id", values="mase")
    )


def report(name: str, result, elapsed: float, interval: float) -> None:
    summary = result.summary
    n = summary.height
    print(f"== {name}: {n} series, {summary['n_hours'].min()}-{summary['n_hours'].max()} h ==")
    print(f"wall time {elapsed:.1f} s ({n / elapsed:.0f} series/s)")
    scored = summary.drop_nulls("mase_held_out").filter(
        pl.col("mase_seasonal_naive_held_out").is_not_null()
    )
    chosen, naive = (
        scored["mase_held_out"].median(),
        scored["mase_seasonal_naive_held_out"].median(),
    )
    print(
        f"in sample   median MASE chosen {summary['mase_chosen'].median():.3f}, daily "
        f"seasonal naive {summary['mase_seasonal_naive'].median():.3f}"
    )
    print(
        f"held out    median MASE chosen {chosen:.3f}, daily seasonal naive {naive:.3f} "
        f"({100 * (1 - chosen / naive):.1f} % below; {scored.height} series)"
    )
    per_model = held_out_by_model(result.backtests)
    cheap = [m for m in CHEAP if m in per_model.columns]
    common = per_model.drop_nulls(cheap).join(
        summary.select("series_id", "mase_held_out"), on="series_id"
    )
    if common.height:
        medians = {m: common[m].median() for m in cheap}
        best = min(medians, key=lambda m: medians[m])
        mine = common["mase_held_out"].median()
        print(
            f"            on the {common.height} series every cheap candidate was scored on: "
            f"chosen {mine:.3f}, best single cheap {best} {medians[best]:.3f} "
            f"({100 * (1 - mine / medians[best]):.1f} % below), daily seasonal naive "
            f"{medians[BASELINE]:.3f}"
        )
        print(
            "            each cheap candidate alone: "
            + ", ".join(f"{m} {v:.3f}" for m, v in sorted(medians.items(), key=lambda kv: kv[1]))
        )
        if GLOBAL in common.columns:
            alone = common.drop_nulls(GLOBAL)
            print(
                f"            {GLOBAL} alone {alone[GLOBAL].median():.3f} on the {alone.height} "
                f"of them it ran on (chosen there {alone['mase_held_out'].median():.3f})"
            )
    points = summary["n_points_held_out"].sum()
    covered = (summary["coverage_held_out"] * summary["n_points_held_out"]).sum() / points
    print(f"held-out coverage {covered:.3f} at nominal {interval} ({points} hours)")
    worse = (scored["mase_held_out"] > scored["mase_seasonal_naive_held_out"]).mean()
    print(f"series worse than daily seasonal naive out of sample: {100 * worse:.0f} %")
    slow = int(summary["slow_models_run"].sum())
    counts = summary.group_by("model").len().sort("len", "model", descending=True).head(6)
    print(
        f"slow models ran on {slow} series; most chosen: "
        + ", ".join(f"{m} {k}" for m, k in counts.iter_rows())
    )
    print()


def run(
    name: str, frame: pl.DataFrame, limits: pl.DataFrame, settings: ForecastPolicy, processes: int
) -> None:
    started = time.perf_counter()
    result = forecast_series(
        frame,
        settings,
        limits=limits,
        processes=processes,
        on_stage=lambda message: print(f"  {message}", flush=True),
    )
    report(name, result, time.perf_counter() - started, settings.interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["bitbrains", "sim"])
    parser.add_argument("--shards", type=int, default=200, help="simulated shards")
    parser.add_argument("--days", type=int, default=21, help="simulated days of history")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    parser.add_argument("--slow-models", nargs="*", default=list(ForecastPolicy().slow_models))
    parser.add_argument("--slow-budget", type=float, default=ForecastPolicy().slow_budget_seconds)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--global-model",
        action=argparse.BooleanOptionalAction,
        default=ForecastPolicy().global_model,
        help="add the global LightGBM candidate (default: the policy default)",
    )
    args = parser.parse_args()
    settings = ForecastPolicy(
        slow_models=tuple(args.slow_models),
        slow_budget_seconds=args.slow_budget,
        global_model=args.global_model,
    )
    print(f"settings: {settings.model_dump()}; {args.processes} processes\n")
    if "bitbrains" in args.data:
        frame, limits = bitbrains_frames()
        run("Bitbrains GWA-T-12 VM cpu_usage", frame, limits, settings, args.processes)
    if "sim" in args.data:
        for seed in args.seeds:
            frame, limits = sim_frames(args.shards, args.days, seed)
            name = f"simulator, {args.shards} shards, {args.days} days, seed {seed}"
            run(name, frame, limits, settings, args.processes)


if __name__ == "__main__":
    main()
