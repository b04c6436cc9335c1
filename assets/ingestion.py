"""Ingestion assets: the configured sky and every telemetry feed, into DuckDB schema `raw`."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.metadata import preview, problems_check, table_metadata, table_preview
from assets.routing import ROUTING
from orchestration.resources import DUCKDB_WRITER_POOL, DuckDBFile, SkyResource
from skyshard import db
from skyshard.broker.ops_tables import routed_hosts
from skyshard.config.sky import Sky
from skyshard.config.sky_tables import sky_frames
from skyshard.sim.home import refresh_demo_sky
from skyshard.sources import ingest
from skyshard.sources.base import Window
from skyshard.sources.freshness import MAX_TELEMETRY_AGE, stale_providers
from skyshard.sources.raw_tables import INGEST_TABLES, QUARANTINE
from skyshard.sources.registry import check_sources, primary_table

GROUP = "ingestion"
INGEST_LOOKBACK = timedelta(days=14)


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", table])


def feed_check_name(source_id: str) -> str:
    return f"feed_{source_id.replace('-', '_')}"


SKY_CONFIG_TABLES = ("sky_providers", "sky_hosts", "sky_shards", "sky_shard_dependencies")
SKY_CONFIG_KEYS = [raw_key(name) for name in SKY_CONFIG_TABLES]


@dg.multi_asset(
    name="sky_config",
    specs=[
        dg.AssetSpec(
            raw_key(name),
            group_name=GROUP,
            kinds={"duckdb", "python"},
            deps=[ROUTING],
            description=f"`raw.{name}`: the configured sky (providers.yaml, workloads.yaml), "
            "shards placed where the routing table says they run.",
        )
        for name in SKY_CONFIG_TABLES
    ],
    pool=DUCKDB_WRITER_POOL,
)
def sky_config(context: dg.AssetExecutionContext, duckdb: DuckDBFile, sky: SkyResource):
    """Write the validated configuration as tables, replacing the previous version."""
    configured = sky.load()
    frames = sky_frames(configured, routed_hosts(duckdb.path))
    with duckdb.connect() as con:
        for name, frame in frames.items():
            db.replace_table(con, f"raw.{name}", frame)
        described = {name: table_metadata(con, f"raw.{name}") for name in frames}
    context.log.info(
        f"sky from {configured.home}: {len(configured.providers)} providers, "
        f"{len(configured.hosts)} hosts, {len(configured.shards)} shards"
    )
    for name, frame in frames.items():
        yield dg.MaterializeResult(
            asset_key=raw_key(name),
            metadata={**described[name], "preview": preview(frame)},
        )


RECENT_CHECK = "telemetry_is_recent"


def _telemetry_checks(sky: Sky) -> list[dg.AssetCheckSpec]:
    recent = dg.AssetCheckSpec(
        RECENT_CHECK,
        asset=raw_key("shard_usage"),
        description=f"Every provider's newest shard usage sample is at most "
        f"{MAX_TELEMETRY_AGE.total_seconds() / 3600:.0f} h old (data time: a re-ingested old "
        "capture is still stale).",
    )
    feeds = [
        dg.AssetCheckSpec(
            feed_check_name(source.id),
            asset=raw_key(primary_table(source.type)),
            description=f"Feed {source.id} ({source.type}, provider {provider.id}) was ingested.",
        )
        for provider, source in ingest.sources_of(sky.providers)
    ]
    return [recent, *feeds]


def build_telemetry_asset(at_load: Sky, partitioned: bool = False) -> dg.AssetsDefinition:
    """The telemetry multi-asset, with one health check per feed of the sky as loaded now;
    `partitioned`: one partition per feed, out of the writer pool (each feed is written in one
    short transaction that waits for DuckDB's file lock), so workers fetch and parse side by
    side."""
    feeds = dg.StaticPartitionsDefinition([s.id for _, s in ingest.sources_of(at_load.providers)])

    @dg.multi_asset(
        name="telemetry",
        specs=[
            dg.AssetSpec(
                raw_key(table.name),
                group_name=GROUP,
                kinds={"duckdb", "python"},
                deps=[raw_key("sky_shards")],
                description=f"`raw.{table.name}` from every configured telemetry feed.",
            )
            for table in (*INGEST_TABLES, QUARANTINE)
        ],
        check_specs=_telemetry_checks(at_load),
        pool=None if partitioned else DUCKDB_WRITER_POOL,
        partitions_def=feeds if partitioned else None,
        # A partition answers only its own feed's check: subsettable outputs are optional.
        can_subset=partitioned,
    )
    def telemetry(context: dg.AssetExecutionContext, duckdb: DuckDBFile, sky: SkyResource):
        """Fetch and parse each feed with no connection open, then write it in one transaction.

        A broken feed is logged and fails its own check; the other feeds are still written.
        """
        now = datetime.now(UTC).replace(tzinfo=None)
        window = Window(start=now - INGEST_LOOKBACK, end=now)
        if not sky.home and refresh_demo_sky() is not None:
            context.log.info("demo sky: telemetry generated up to the current hour")

        def progress(done: int, total: int, outcome: ingest.FeedOutcome) -> None:
            for warning in outcome.warnings:
                context.log.warning(f"feed {outcome.source.id}: {warning}")
            if outcome.ok:
                context.log.info(f"[{done}/{total}] {outcome.source.id}: {outcome.rows:,} rows")
            else:
                context.log.warning(f"feed {outcome.source.id} failed: {outcome.error}")

        only = [context.partition_key] if context.has_partition_key else None
        results = ingest.ingest_all(sky.load(), window, duckdb.path, progress, feeds=only)
        with ingest.read_raw(duckdb.path) as con:  # the lake's, when set: no DuckDB file here
            metadata = {
                table.name: table_preview(con, f"raw.{table.name}")
                for table in (*INGEST_TABLES, QUARANTINE)
            }
            stale = stale_providers(con, now)
        for table in (*INGEST_TABLES, QUARANTINE):
            if raw_key(table.name) in context.selected_asset_keys:
                yield dg.MaterializeResult(
                    asset_key=raw_key(table.name), metadata=metadata[table.name]
                )
        selected = {key.name for key in context.selected_asset_check_keys}
        if RECENT_CHECK in selected:
            yield problems_check(
                RECENT_CHECK, stale, raw_key("shard_usage"), dg.AssetCheckSeverity.WARN
            )
        for collected in results:
            if feed_check_name(collected.source.id) not in selected:
                continue  # a feed added since the definitions were loaded: reload to check it
            yield dg.AssetCheckResult(
                check_name=feed_check_name(collected.source.id),
                asset_key=raw_key(primary_table(collected.source.type)),
                passed=collected.ok,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "provider": collected.provider_id,
                    "error": collected.error or "",
                    "rows": collected.rows,
                    "quarantined": collected.quarantined,
                    "warnings": "\n".join(collected.warnings),
                },
            )

    return telemetry


def build_defs(sky: Sky, partitioned: bool = False) -> dg.Definitions:
    check_sources(sky)  # a feed ingest would refuse for its configuration fails the load
    return dg.Definitions(assets=[sky_config, build_telemetry_asset(sky, partitioned)])
