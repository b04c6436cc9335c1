-- One sample per shard, metric and timestamp: where two feeds report the same sample, the
-- most recently fetched wins. (An aggregate, not a window: this is the largest table.)
with source as (
    select * from {{ source('raw', 'shard_usage') }}
    where value is not null and isfinite(value) and value >= 0
)

select
    shard_id,
    metric,
    cast(ts as timestamp) as sampled_at,
    arg_max(provider_id, fetched_at) as provider_id,
    arg_max(cast(value as double), fetched_at) as value,
    arg_max(source_id, fetched_at) as source_id,
    max(fetched_at) as fetched_at
from source
group by shard_id, metric, ts
