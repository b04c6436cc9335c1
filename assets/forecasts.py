"""Forecast assets: demand, capacity and price forecasts (schema `forecast`) and predicted
bottlenecks."""

import statistics

import dagster as dg
import polars as pl

from assets.metadata import markdown_bars, preview
from orchestration.resources import DUCKDB_WRITER_POOL, DuckDBFile
from skyshard import db
from skyshard.bottlenecks import predict_bottlenecks
from skyshard.forecast import ForecastConfig, input_fingerprints, series_to_refit
from skyshard.home import current_sky
from skyshard.plans.cycle import plan_forecasts
from skyshard.plans.store import write_bottlenecks
from skyshard.scoring import build_outlook, forecast_input, forecast_limits, load_planning_data

GROUP = "forecasts"
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
TABLES = {
    "forecasts": "forecast.forecasts",
    "backtests": "forecast.backtest",
    "summary": "forecast.summary",
}


def _stored(duckdb: DuckDBFile, table: str) -> pl.DataFrame | None:
    schema, name = table.split(".")
    with duckdb.connect() as con:
        found = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()[0][0]
        return con.sql(f"select * from {table}").pl() if found else None


def _median(values: pl.Series) -> float | None:
    clean = [v for v in values.to_list() if v is not None]
    return statistics.median(clean) if clean else None


@dg.asset(
    group_name=GROUP,
    deps=MART_DEPS,
    kinds={"duckdb", "python"},
    pool=DUCKDB_WRITER_POOL,
    description="`forecast.forecasts`, `forecast.backtest`, `forecast.summary`: per-series "
    "Prophet / seasonal-naive / blend forecasts chosen by rolling-origin backtest.",
)
def demand_forecasts(context: dg.AssetExecutionContext, duckdb: DuckDBFile):
    """Refit only the series whose input changed since the last fit; keep the others' rows."""
    policy = current_sky().policy.forecast
    config = ForecastConfig(
        policy.horizon_hours,
        policy.interval,
        policy.backtest_cutoffs,
        policy.prophet_max_series,
        policy.capacity_share,
    )
    with duckdb.connect() as con:
        data = load_planning_data(con)
    frame = forecast_input(data)
    limits = forecast_limits(data)
    current = input_fingerprints(frame, config, limits)
    previous_summary = _stored(duckdb, TABLES["summary"])
    previous = {}
    if previous_summary is not None:
        previous = dict(previous_summary.select("series_id", "input_fingerprint").iter_rows())
    refit = series_to_refit(current, previous)
    context.log.info(f"{len(refit)} of {len(current)} series changed since the last fit")

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            context.log.info(f"Prophet {done}/{total} series")

    result = plan_forecasts(
        data, current_sky().policy, refit, on_progress=progress, on_stage=context.log.info
    )
    tables = {}
    for key, fresh in (
        ("forecasts", result.forecasts),
        ("backtests", result.backtests),
        ("summary", result.summary),
    ):
        old = _stored(duckdb, TABLES[key]) if refit != sorted(current) else None
        if old is not None:
            kept = old.filter(pl.col("series_id").is_in(list(current)))
            kept = kept.filter(~pl.col("series_id").is_in(refit))
            fresh = pl.concat([kept.select(fresh.columns).cast(fresh.schema), fresh])
        tables[key] = fresh.sort("series_id")
    with duckdb.connect() as con:
        con.execute("BEGIN TRANSACTION")
        for key, table in TABLES.items():
            db.replace_table(con, table, tables[key])
        con.execute("COMMIT")
    summary = tables["summary"]
    models = summary.group_by("model").len().sort("len", descending=True)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": tables["forecasts"].height,
            "series": len(current),
            "refitted": len(refit),
            "median_mase_chosen": _median(summary["mase_chosen"]),
            "median_mase_seasonal_naive": _median(summary["mase_seasonal_naive"]),
            "median_mase_prophet": _median(summary["mase_prophet"]),
            "models_chosen": preview(models),
        }
    )


@dg.asset_check(
    asset=demand_forecasts,
    description="Median MASE of the chosen forecasts is "
    "no worse than the seasonal-naive baseline's.",
)
def chosen_not_worse_than_baseline(duckdb: DuckDBFile) -> dg.AssetCheckResult:
    summary = _stored(duckdb, TABLES["summary"])
    if summary is None or summary.is_empty():
        return dg.AssetCheckResult(passed=True, metadata={"series": 0})
    chosen = _median(summary["mase_chosen"])
    baseline = _median(summary["mase_seasonal_naive"])
    passed = chosen is None or baseline is None or chosen <= baseline + 1e-12
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"median_mase_chosen": chosen, "median_mase_seasonal_naive": baseline},
    )


@dg.asset(
    group_name=GROUP,
    deps=[demand_forecasts, *MART_DEPS],
    kinds={"duckdb", "python"},
    pool=DUCKDB_WRITER_POOL,
    description="`forecast.predicted_bottlenecks`: shards running out of room, capacity "
    "withdrawn, prices past the cap, open incidents, with the hours until each.",
)
def predicted_bottlenecks(context: dg.AssetExecutionContext, duckdb: DuckDBFile):
    horizon = current_sky().policy.forecast.horizon_hours
    with duckdb.connect() as con:
        data = load_planning_data(con)
        forecasts = con.sql(f"select * from {TABLES['forecasts']}").pl()
    found = predict_bottlenecks(data, build_outlook(data, forecasts, horizon))
    with duckdb.connect() as con:
        write_bottlenecks(con, found)
    top = found.sort("hours_ahead").select(
        "shard_id", "host_id", "cause", "resource", "hours_ahead", "detail"
    )
    context.log.info(f"{found.height} bottlenecks ahead for {found['shard_id'].n_unique()} shards")
    metadata = {"dagster/row_count": found.height, "soonest": preview(top, 15)}
    over = found.filter(pl.col("cause") == "demand_over_capacity").sort("hours_ahead")
    if over.height:
        metadata["soonest_forecast"] = dg.MetadataValue.md(
            _demand_chart(forecasts, over.row(0, named=True))
        )
    return dg.MaterializeResult(metadata=metadata)


def _demand_chart(forecasts: pl.DataFrame, bottleneck: dict) -> str:
    """The soonest overloaded shard's forecast upper bound, hour by hour, against what its
    host can give it."""
    series = f"shard/{bottleneck['shard_id']}/{bottleneck['resource']}"
    hours = forecasts.filter(pl.col("series_id") == series).sort("ts")
    available = bottleneck["available"]
    rows = [(f"{ts:%m-%d %H:%M}", upper) for ts, upper in hours.select("ts", "yhat_upper").rows()]
    title = (
        f"{series}: upper bound of the forecast; its host can give {available:,.2f} "
        f"({bottleneck['detail']})"
    )
    return markdown_bars(title, rows, marks={label for label, v in rows if v > available})


defs = dg.Definitions(
    assets=[demand_forecasts, predicted_bottlenecks],
    asset_checks=[chosen_not_worse_than_baseline],
)
