-- One sample per shard, metric and timestamp: the most recently fetched wins.
with source as (
    select * from {{ source('raw', 'shard_usage') }}
),

renamed as (
    select
        shard_id,
        provider_id,
        metric,
        cast(ts as timestamp) as sampled_at,
        cast(value as double) as value,
        source_id,
        fetched_at
    from source
    where value is not null and isfinite(value) and value >= 0
)

select * exclude (recency)
from (
    select
        *,
        row_number() over (
            partition by shard_id, metric, sampled_at order by fetched_at desc, source_id
        ) as recency
    from renamed
)
where recency = 1
