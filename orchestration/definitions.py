"""The skyshard code location: every domain's `defs` merged, with the shared resources."""

import dagster as dg

from assets import features, ingestion
from orchestration import jobs
from orchestration.resources import build_resources
from skyshard.home import current_sky

defs = dg.Definitions.merge(
    ingestion.build_defs(current_sky()),
    features.defs,
    jobs.defs,
    dg.Definitions(resources=build_resources()),
)
