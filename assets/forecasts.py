"""Forecast assets: demand, capacity and price forecasts (schema `forecast`) and predicted
bottlenecks."""

import statistics

import dagster as dg
import polars as pl

from assets.metadata import png, preview, problems_check, table_metadata
from orchestration.resources import DUCKDB_WRITER_POOL, DuckDBFile, SkyResource
from skyshard.forecast import group_keys, input_fingerprints, series_in_group, series_to_refit
from skyshard.forecast.charts import forecast_vs_capacity_chart
from skyshard.forecast.lake import (
    LAKE_TABLES,
    attach_forecast_lake,
    lake_fingerprints,
    write_groups,
)
from skyshard.forecast.store import (
    TABLES,
    create_tables,
    read_stored,
    stored_fingerprints,
    write_refit,
)
from skyshard.plans.checks import bottleneck_problems
from skyshard.plans.cycle import plan_forecasts
from skyshard.plans.store import write_bottlenecks
from skyshard.scoring import (
    PlanningData,
    build_outlook,
    forecast_input,
    forecast_limits,
    load_planning_data,
)
from skyshard.scoring.bottlenecks import predict_bottlenecks
from skyshard.storage.lake import lake_dir, read_lake
from skyshard.storage.snapshots import SnapshotUnavailable, read_current

GROUP = "forecasts"
# How far the held-out coverage of the bounds may stray from the nominal interval.
COVERAGE_TOLERANCE = 0.03
MART_DEPS = [
    dg.AssetKey(["marts", name])
    for name in (
        "fct_shard_usage_hourly",
        "fct_provider_capacity_hourly",
        "fct_provider_price_hourly",
        "fct_provider_incidents",
        "fct_latency",
        "dim_shards",
        "dim_hosts",
        "dim_providers",
    )
]


def _median(values: pl.Series) -> float | None:
    clean = [v for v in values.to_list() if v is not None]
    return statistics.median(clean) if clean else None


FORECASTS = dg.AssetKey(["forecast", "forecasts"])
SHARD_GROUPS = dg.StaticPartitionsDefinition(group_keys())
"""Forecast partitions for workers that share the cycle (`orchestration/scale_out.py`)."""


def build_demand_forecasts(partitioned: bool = False) -> dg.AssetsDefinition:
    """The forecast asset: one run over every series, or (`partitioned`) one partition per
    shard group. Partitions compute side by side and stay out of the writer pool: each writes
    its group in one short transaction, waiting for DuckDB's file lock (`skyshard.db.connect`),
    or with the shared lake its group's files, on any machine, without the DuckDB file.
    """

    @dg.asset(
        key=FORECASTS,
        group_name=GROUP,
        deps=MART_DEPS,
        kinds={"duckdb", "python"},
        pool=None if partitioned else DUCKDB_WRITER_POOL,
        partitions_def=SHARD_GROUPS if partitioned else None,
        description="`forecast.forecasts`, `forecast.backtest`, `forecast.summary`: per-series "
        "forecasts chosen among cheap robust estimators and slow models (statsforecast, "
        "Prophet) by rolling-origin backtest, with conformal bounds.",
    )
    def demand_forecasts(
        context: dg.AssetExecutionContext, duckdb: DuckDBFile, sky: SkyResource
    ) -> dg.MaterializeResult:
        """Refit only the series whose input changed since the last fit (of this partition's
        shard group, if partitioned); keep the others' rows. With the shared lake, the groups'
        files are written instead of the DuckDB file (`skyshard.forecast.lake`)."""
        settings = sky.load().policy
        lake = lake_dir()
        groups = [context.partition_key] if context.has_partition_key else group_keys()
        if lake is None:
            with duckdb.connect(read_only=True) as con:
                data = load_planning_data(con)
                previous = stored_fingerprints(con)
        else:
            data = _marts(context, duckdb)
            previous = lake_fingerprints(lake, groups)
        frame = forecast_input(data)
        current = input_fingerprints(frame, settings.forecast, forecast_limits(data))
        refit = series_to_refit(current, previous)
        if context.has_partition_key:
            refit = series_in_group(refit, context.partition_key)
        context.log.info(f"{len(refit)} of {len(current)} series to refit")

        def progress(done: int, total: int) -> None:
            if done == total or done % max(1, total // 10) == 0:
                context.log.info(f"slow models {done}/{total} series")

        result = plan_forecasts(
            data, settings, refit, on_progress=progress, on_stage=context.log.info
        )
        if lake is None:
            with duckdb.connect() as con:
                tables = write_refit(con, result, current, refit)
                described = table_metadata(con, TABLES["forecasts"])
        else:
            tables = write_groups(lake, result, current, refit, groups)
            if not context.has_partition_key:  # on the file's machine: its views over the lake
                with duckdb.connect() as con:
                    attach_forecast_lake(con, lake)
            with read_lake(lake, LAKE_TABLES, create_tables) as con:
                described = table_metadata(con, TABLES["forecasts"])
        summary = tables["summary"]
        models = summary.group_by("model").len().sort("len", descending=True)
        return dg.MaterializeResult(
            metadata={
                **described,
                "series": len(current),
                "refitted": len(refit),
                "median_mase_held_out": _median(summary["mase_held_out"]),
                "median_mase_seasonal_naive_held_out": _median(
                    summary["mase_seasonal_naive_held_out"]
                ),
                "held_out_coverage": held_out_coverage(summary),
                "slow_models_run": int(summary["slow_models_run"].sum()),
                "models_chosen": preview(models),
            }
        )

    return demand_forecasts


def held_out_coverage(summary: pl.DataFrame) -> float | None:
    """Share of the held-out actuals of every series inside bounds calibrated before them."""
    points = summary["n_points_held_out"].sum()
    if not points:
        return None
    return float((summary["coverage_held_out"] * summary["n_points_held_out"]).sum() / points)


def _marts(context: dg.AssetExecutionContext, duckdb: DuckDBFile) -> PlanningData:
    """With the lake: a partition, on any machine, reads the marts from the read snapshot
    `build_features` published and never opens the DuckDB file; an unpartitioned run is on the
    file's machine and reads the file."""
    if not context.has_partition_key:
        with duckdb.connect(read_only=True) as con:
            return load_planning_data(con)
    try:
        with read_current(duckdb.path) as (con, snapshot):
            data = load_planning_data(con)
    except SnapshotUnavailable as error:
        raise dg.Failure(str(error)) from error
    context.log.info(f"marts from the read snapshot {snapshot.path}, {snapshot.age_s():.0f} s old")
    return data


def _stored_summary(duckdb: DuckDBFile) -> pl.DataFrame | None:
    lake = lake_dir()
    if lake is not None:  # any machine: the lake, not the DuckDB file
        with read_lake(lake, LAKE_TABLES, create_tables) as con:
            return read_stored(con, TABLES["summary"])
    with duckdb.connect() as con:
        return read_stored(con, TABLES["summary"])


@dg.asset_check(
    asset=FORECASTS,
    description="Out of sample (models chosen on the earlier backtest origins, scored on the "
    "later ones), the median MASE of the chosen forecasts is no worse than the daily "
    "seasonal naive's.",
)
def chosen_not_worse_than_baseline(duckdb: DuckDBFile) -> dg.AssetCheckResult:
    summary = _stored_summary(duckdb)
    if summary is None or summary.is_empty():
        return dg.AssetCheckResult(passed=True, metadata={"series": 0})
    chosen = _median(summary["mase_held_out"])
    baseline = _median(summary["mase_seasonal_naive_held_out"])
    passed = chosen is None or baseline is None or chosen <= baseline + 1e-12
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "median_mase_held_out": chosen,
            "median_mase_seasonal_naive_held_out": baseline,
        },
    )


@dg.asset_check(
    asset=FORECASTS,
    description="The bounds, calibrated on the earlier backtest origins, cover the later "
    "origins' actuals within 0.03 of the nominal interval.",
)
def bounds_calibrated(duckdb: DuckDBFile, sky: SkyResource) -> dg.AssetCheckResult:
    summary = _stored_summary(duckdb)
    covered = None if summary is None else held_out_coverage(summary)
    nominal = sky.load().policy.forecast.interval
    return dg.AssetCheckResult(
        passed=covered is None or abs(covered - nominal) <= COVERAGE_TOLERANCE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"held_out_coverage": covered, "nominal": nominal},
    )


@dg.asset(
    key=["forecast", "predicted_bottlenecks"],
    group_name=GROUP,
    deps=[FORECASTS, *MART_DEPS],
    kinds={"duckdb", "python"},
    pool=DUCKDB_WRITER_POOL,
    description="`forecast.predicted_bottlenecks`: shards running out of room, capacity "
    "withdrawn, prices past the cap, open incidents, with the hours until each.",
    check_specs=[
        dg.AssetCheckSpec(
            "bottlenecks_are_known_and_ahead",
            asset=["forecast", "predicted_bottlenecks"],
            description="Every bottleneck is for a shard in marts.dim_shards and lies within "
            "the forecast horizon.",
        )
    ],
)
def predicted_bottlenecks(context: dg.AssetExecutionContext, duckdb: DuckDBFile, sky: SkyResource):
    horizon = sky.load().policy.forecast.horizon_hours
    lake = lake_dir()
    with duckdb.connect() as con:
        if lake is not None:
            attach_forecast_lake(con, lake)
        data = load_planning_data(con)
        forecasts = con.sql(f"select * from {TABLES['forecasts']}").pl()
    found = predict_bottlenecks(data, build_outlook(data, forecasts, horizon))
    with duckdb.connect() as con:
        write_bottlenecks(con, found)
        described = table_metadata(con, "forecast.predicted_bottlenecks")
        check = problems_check("bottlenecks_are_known_and_ahead", bottleneck_problems(con, horizon))
    top = found.sort("hours_ahead").select(
        "shard_id", "host_id", "cause", "resource", "hours_ahead", "detail"
    )
    context.log.info(f"{found.height} bottlenecks ahead for {found['shard_id'].n_unique()} shards")
    over = found.filter(pl.col("cause") == "demand_over_capacity").sort("hours_ahead")
    metadata = {
        **described,
        "shards_at_risk": found["shard_id"].n_unique(),
        "soonest": preview(top, 15),
    }
    if found.height:
        metadata["soonest_hours_ahead"] = int(found["hours_ahead"].min())
    if over.height:
        chart = forecast_vs_capacity_chart(
            forecasts, over.unique("shard_id", keep="first", maintain_order=True)
        )
        metadata["forecast_vs_capacity"] = png(chart, "forecast vs capacity, shards at risk")
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


def build_defs(partitioned: bool = False) -> dg.Definitions:
    return dg.Definitions(
        assets=[build_demand_forecasts(partitioned), predicted_bottlenecks],
        asset_checks=[chosen_not_worse_than_baseline, bounds_calibrated],
    )
