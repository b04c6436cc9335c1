"""Freshness checks: telemetry and plans flagged when not refreshed on time, evaluated by a
sensor between runs (telemetry's data time is checked by `telemetry_is_recent` at ingestion)."""

from datetime import timedelta

import dagster as dg

from assets.forecasts import predicted_bottlenecks
from assets.ingestion import raw_key
from assets.planning import MIGRATION_PLAN

# Hourly ingestion and a plan every 4 hours, each with room for one late or failed run.
TELEMETRY_MAX_LAG = timedelta(hours=2)
PLAN_MAX_LAG = timedelta(hours=9)

freshness_checks = [
    *dg.build_last_update_freshness_checks(
        assets=[raw_key("shard_usage"), raw_key("host_metrics"), raw_key("prices")],
        lower_bound_delta=TELEMETRY_MAX_LAG,
    ),
    *dg.build_last_update_freshness_checks(
        assets=[MIGRATION_PLAN, predicted_bottlenecks.key],
        lower_bound_delta=PLAN_MAX_LAG,
    ),
]

freshness_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=freshness_checks,
    name="freshness_checks",
    # Each evaluation is a run: every 10 minutes is enough for lags measured in hours.
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.RUNNING,
)

defs = dg.Definitions(asset_checks=freshness_checks, sensors=[freshness_sensor])
