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

from assets.metadata import column_schema
from orchestration.resources import DUCKDB_WRITER_POOL, DuckDBFile, dbt_project
from skyshard import db
from skyshard.forecast.lake import attach_forecast_lake
from skyshard.sources.ingest import attach_raw_lake
from skyshard.storage.lake import lake_dir
from skyshard.storage.snapshots import publish

GROUP = "features"


class SkyshardDbtTranslator(DagsterDbtTranslator):
    """Every table keyed `<schema>/<name>` like the Python ones: sources `raw/<table>` (so they
    join the ingestion lineage), models `<schema>/<model>` (e.g. `marts/fct_shard_usage_hourly`);
    one group; the documented description with the relation it builds; the owner that
    dbt_project.yml's `meta.owner` gives."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        return dg.AssetKey(relation(dbt_resource_props).split("."))

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        kind = dbt_resource_props["config"].get("materialized", "source")
        about = dbt_resource_props.get("description") or "(no description in the dbt project)"
        return f"`{relation(dbt_resource_props)}` (dbt {kind}): {about}"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str] | None:
        owner = (dbt_resource_props["config"].get("meta") or {}).get("owner")
        return [owner] if owner else None


def relation(dbt_resource_props: Mapping[str, Any]) -> str:
    """`schema.name` of a dbt source table or model, as DuckDB and the asset key know it."""
    name = dbt_resource_props["name"]
    if dbt_resource_props["resource_type"] == "source":
        return f"{dbt_resource_props['source_name']}.{name}"
    schema = dbt_resource_props["config"].get("schema")
    if not schema:
        raise ValueError(f"dbt_project.yml: model {name} has no +schema (expected one per folder)")
    return f"{schema}.{name}"


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=SkyshardDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_code_references=True)
    ),
    pool=DUCKDB_WRITER_POOL,
)
def dbt_features(context: dg.AssetExecutionContext, dbt: DbtCliResource, duckdb: DuckDBFile):
    """`dbt build`: models and their tests (loaded as asset checks), with row counts; with the
    shared lake, on views over the telemetry its partitions wrote there, and then a read
    snapshot published, which forecast partitions read the marts from on any machine."""
    lake = lake_dir()
    if lake is not None:
        with duckdb.connect() as con:
            attached = attach_raw_lake(con, lake) | attach_forecast_lake(con, lake)
        context.log.info(f"tables read from the lake {lake}: files per table {attached}")
    events = list(dbt.cli(["build"], context=context).stream())
    if lake is not None and publish(duckdb.path) is None:
        raise dg.Failure(
            f"{duckdb.path}: no read snapshot published after dbt build (a writer held the "
            "file); forecast partitions would read older marts: run build_features again"
        )
    yield from with_table_metadata(context, events, duckdb)


def with_table_metadata(
    context: dg.AssetExecutionContext, events: list, duckdb: DuckDBFile
) -> Iterator[Any]:
    """Add each model's column schema (types as stored) and, for tables, `dagster/row_count`,
    read after dbt has exited.

    dagster-dbt's own row counting keeps a dbt adapter connection open in this process;
    DuckDB allows one writer process, so counts are taken on a short connection of our own.
    """
    with duckdb.connect(read_only=True) as con:
        for event in events:
            if isinstance(event, dg.Output):
                key = context.asset_key_for_output(event.output_name)
                relation = f"{key.path[0]}.{key.path[1]}"
                added = {"dagster/column_schema": column_schema(con, relation)}
                if key.path[0] == "marts":  # tables; counting views would recompute them
                    added["dagster/row_count"] = db.scalar(con, f"SELECT count(*) FROM {relation}")
                event = event.with_metadata({**event.metadata, **added})
            yield event


defs = dg.Definitions(assets=[dbt_features])
