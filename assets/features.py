"""Feature assets: the dbt project (staging, intermediate, marts) built on the raw tables."""

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from orchestration.resources import DUCKDB_WRITER_POOL, DuckDBFile, dbt_project
from skyshard import db

GROUP = "features"


class SkyshardDbtTranslator(DagsterDbtTranslator):
    """dbt sources keep their default keys (`raw/<table>`), so they join the ingestion lineage;
    models are keyed `<schema>/<model>` (e.g. `marts/fct_shard_usage_hourly`)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=SkyshardDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_code_references=True)
    ),
    pool=DUCKDB_WRITER_POOL,
)
def dbt_features(context: dg.AssetExecutionContext, dbt: DbtCliResource, duckdb: DuckDBFile):
    """`dbt build`: models and their tests (loaded as asset checks), with row counts."""
    events = list(dbt.cli(["build"], context=context).stream())
    yield from with_row_counts(context, events, duckdb)


def with_row_counts(
    context: dg.AssetExecutionContext, events: list, duckdb: DuckDBFile
) -> Iterator[Any]:
    """Add `dagster/row_count` to each model's output, counted after dbt has exited.

    dagster-dbt's own row counting keeps a dbt adapter connection open in this process;
    DuckDB allows one writer process, so counts are taken on a short connection of our own.
    """
    with duckdb.connect(read_only=True) as con:
        for event in events:
            if isinstance(event, dg.Output):
                key = context.asset_key_for_output(event.output_name)
                if key.path[0] == "marts":  # tables; counting views would recompute them
                    count = db.scalar(con, f'SELECT count(*) FROM "{key.path[0]}"."{key.path[1]}"')
                    event = event.with_metadata({**event.metadata, "dagster/row_count": count})
            yield event


defs = dg.Definitions(assets=[dbt_features])
