"""The skyshard code location: every domain's `defs` merged, with the shared resources."""

import dagster as dg

from assets import features, forecasts, ingestion, planning, routing, trust
from orchestration import jobs, migration_job
from orchestration.resources import build_resources
from sensors import ledger, migrations
from skyshard.config.sky import Sky
from skyshard.sim.home import current_sky


def build_definitions(sky: Sky) -> dg.Definitions:
    """All definitions for `sky` (its telemetry feeds decide the per-feed asset checks)."""
    return dg.Definitions.merge(
        ingestion.build_defs(sky),
        features.defs,
        forecasts.defs,
        planning.defs,
        trust.defs,
        routing.defs,
        ledger.defs,
        jobs.defs,
        migration_job.defs,
        migrations.defs,
        dg.Definitions(resources=build_resources()),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by Dagster when the code location starts: reads SKYSHARD_HOME (or the demo sky)."""
    return build_definitions(current_sky())
