"""The skyshard code location for workers that share the cycle: the same assets and tables,
with telemetry ingestion partitioned per feed and forecasts per shard group, so the
multiprocess or Celery executor can compute partitions side by side (docs/operations.md)."""

import dagster as dg

from orchestration.definitions import build_definitions
from skyshard.sim.home import current_sky


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(current_sky(), partitioned=True)
