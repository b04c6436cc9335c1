-- Hourly price per cpu-hour per provider and region, with spikes flagged against the trailing
-- 24 h median. Providers without a price feed get their contract list price.
with observed as (
    select
        provider_id,
        region,
        hour,
        price_per_cpu_hour,
        price_per_cpu_hour_max,
        price_per_cpu_hour_min,
        price_per_gb_hour,
        instance_series,
        observations,
        'telemetry' as price_source
    from {{ ref('int_provider_prices_resampled_hourly') }}
),

hours as (
    select unnest(generate_series(first_hour, last_hour, interval 1 hour)) as hour
    from {{ ref('int_telemetry_window') }}
),

list_priced as (
    select
        providers.provider_id,
        unnest(providers.regions) as region,
        hours.hour,
        providers.list_price_per_cpu_hour as price_per_cpu_hour,
        providers.list_price_per_cpu_hour as price_per_cpu_hour_max,
        providers.list_price_per_cpu_hour as price_per_cpu_hour_min,
        providers.list_price_per_gb_hour as price_per_gb_hour,
        0 as instance_series,
        0 as observations,
        'list_price' as price_source
    from {{ ref('stg_sky__providers') }} as providers
    cross join hours
    where providers.provider_id not in (select provider_id from observed)
),

prices as (
    select * from observed
    union all
    select * from list_priced
)

select
    prices.*,
    median(price_per_cpu_hour) over trailing_day as trailing_24h_median,
    price_per_cpu_hour > 1.5 * median(price_per_cpu_hour) over trailing_day as is_spike,
    price_per_cpu_hour > providers.price_cap_per_cpu_hour as is_over_cap
from prices
left join {{ ref('stg_sky__providers') }} as providers using (provider_id)
window trailing_day as (
    partition by prices.provider_id, prices.region
    order by prices.hour
    range between interval 24 hour preceding and interval 1 hour preceding
)
