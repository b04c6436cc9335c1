"""Feature assets: the dbt project (staging, intermediate, marts) built on the raw tables."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from orchestration.resources import DUCKDB_WRITER_POOL, dbt_project

GROUP = "features"


class SkyshardDbtTranslator(DagsterDbtTranslator):
    """dbt sources keep their default keys (`raw/<table>`), so they join the ingestion lineage."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=SkyshardDbtTranslator(),
    pool=DUCKDB_WRITER_POOL,
)
def dbt_features(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    """`dbt build`: models and their tests (loaded as asset checks), with row counts."""
    yield from dbt.cli(["build"], context=context).stream().fetch_row_counts()


defs = dg.Definitions(assets=[dbt_features])
