"""The skyshard code location: every domain's `defs` merged, with the shared resources."""

import dagster as dg

from assets import features, forecasts, freshness, ingestion, planning, review, routing, trust
from orchestration import jobs, migration_job, shard_job
from orchestration.resources import build_resources
from sensors import ledger, migrations
from skyshard.config.sky import Sky
from skyshard.sim.home import current_sky

# Who answers for an asset, by group; an asset that names its own owners (dbt's meta.owner)
# keeps them.
OWNERS = {
    "ingestion": ["team:skyshard-data"],
    "features": ["team:skyshard-data"],
    "forecasts": ["team:skyshard-planning"],
    "planning": ["team:skyshard-planning"],
    "trust": ["team:skyshard-trust"],
    "migrations": ["team:skyshard-migrations"],
}


def with_owners(spec: dg.AssetSpec) -> dg.AssetSpec:
    return spec if spec.owners else spec.replace_attributes(owners=OWNERS[spec.group_name])


def build_definitions(sky: Sky, *, partitioned: bool = False) -> dg.Definitions:
    """All definitions for `sky` (its telemetry feeds decide the per-feed asset checks), with
    owners and links to the code of every asset. `partitioned`: ingestion per feed and
    forecasts per shard group, with the jobs that run them (`orchestration/scale_out.py`)."""
    domains = [
        ingestion.build_defs(sky, partitioned=partitioned),
        features.defs,
        forecasts.build_defs(partitioned),
        planning.defs,
        review.defs,
        trust.defs,
        routing.defs,
    ]
    assets = dg.map_asset_specs(with_owners, [a for d in domains for a in d.assets or []])
    return dg.Definitions.merge(
        dg.Definitions(
            assets=dg.with_source_code_references(assets),
            asset_checks=[c for d in domains for c in d.asset_checks or []],
            jobs=[j for d in domains for j in d.jobs or []],
        ),
        freshness.defs,
        ledger.defs,
        jobs.build_defs(partitioned),
        migration_job.defs,
        migrations.defs,
        shard_job.defs,
        dg.Definitions(resources=build_resources()),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by Dagster when the code location starts: reads SKYSHARD_HOME (or the demo sky)."""
    return build_definitions(current_sky())
