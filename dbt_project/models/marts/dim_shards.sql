-- One row per shard: its request, state, current host and provider, and dependencies.
with dependencies as (
    select
        shard_id,
        count(*) as dependencies,
        min(max_latency_ms) as tightest_latency_ms
    from {{ ref('stg_sky__shard_dependencies') }}
    group by shard_id
)

select
    shards.*,
    hosts.provider_id as current_provider_id,
    hosts.region as current_region,
    coalesce(dependencies.dependencies, 0) as dependencies,
    dependencies.tightest_latency_ms
from {{ ref('stg_sky__shards') }} as shards
left join {{ ref('stg_sky__hosts') }} as hosts on hosts.host_id = shards.current_host_id
left join dependencies using (shard_id)
