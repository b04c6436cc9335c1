-- Prices per instance-hour, also per cpu-hour and per GiB-hour, deduplicated per zone,
-- instance type, product and time.
with source as (
    select * from {{ source('raw', 'prices') }}
),

renamed as (
    select
        provider_id,
        region,
        coalesce(zone, region) as zone,
        instance_type,
        product,
        cast(ts as timestamp) as observed_at,
        cast(price as double) as price_per_instance_hour,
        cast(price as double) / nullif(cpu_per_instance, 0) as price_per_cpu_hour,
        cast(price as double) / nullif(mem_gb_per_instance, 0) as price_per_gb_hour,
        source_id,
        fetched_at
    from source
    where price is not null and isfinite(price) and price >= 0 and cpu_per_instance > 0
)

select * exclude (recency)
from (
    select
        *,
        row_number() over (
            partition by provider_id, zone, instance_type, product, observed_at
            order by fetched_at desc, source_id
        ) as recency
    from renamed
)
where recency = 1
