"""The routing table `ops.routing` as an asset: every `migrate_shard` run reports on it (a
materialization when the move switched the shard's route, an observation otherwise), and
`sky_config` reads it to place shards where they run now for the next planning cycle."""

import dagster as dg

ROUTING = dg.AssetSpec(
    ["ops", "routing"],
    group_name="migrations",
    kinds={"duckdb"},
    description="`ops.routing`: the host each migrated shard runs on, with its generation; "
    "written by the migrate_shard job at each move's commit point.",
)

defs = dg.Definitions(assets=[ROUTING])
