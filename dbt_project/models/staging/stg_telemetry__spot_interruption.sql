-- Spot interruption advice: the latest reading per provider, region, instance type and OS.
with source as (
    select * from {{ source('raw', 'spot_interruption') }}
)

select * exclude (recency)
from (
    select
        provider_id,
        region,
        instance_type,
        product,
        cast(ts as timestamp) as observed_at,
        band,
        interruption_pct,
        savings_pct,
        row_number() over (
            partition by provider_id, region, instance_type, product
            order by ts desc, fetched_at desc
        ) as recency
    from source
    where interruption_pct is not null
)
where recency = 1
