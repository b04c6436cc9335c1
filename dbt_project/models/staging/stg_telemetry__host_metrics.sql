-- Host samples split into resource and kind (capacity or free), deduplicated.
with source as (
    select * from {{ source('raw', 'host_metrics') }}
),

renamed as (
    select
        host_id,
        provider_id,
        metric,
        regexp_extract(metric, '^(.*)_(capacity|free)$', 1) as resource,
        regexp_extract(metric, '^(.*)_(capacity|free)$', 2) as measure,
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
            partition by host_id, metric, sampled_at order by fetched_at desc, source_id
        ) as recency
    from renamed
)
where recency = 1 and resource in ('cpu', 'mem_gb', 'gpu', 'net_mbps')
