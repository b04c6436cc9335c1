-- Hourly price of each (zone, instance type, product) series. Price histories record changes
-- only, so each series carries its own last price forward: an hour's value is the price in
-- effect at its end, and it changes only when that series' price did.
with observed as (
    select
        provider_id,
        region,
        zone,
        instance_type,
        product,
        date_trunc('hour', observed_at) as hour,
        arg_max(price_per_instance_hour, observed_at) as price_per_instance_hour,
        arg_max(price_per_cpu_hour, observed_at) as price_per_cpu_hour,
        arg_max(price_per_gb_hour, observed_at) as price_per_gb_hour,
        max(price_per_cpu_hour) as price_per_cpu_hour_max,
        count(*) as observations
    from {{ ref('stg_telemetry__prices') }}
    group by all
),

bounds as (
    select last_hour from {{ ref('int_telemetry_window') }}
),

spine as (
    select
        series.provider_id,
        series.region,
        series.zone,
        series.instance_type,
        series.product,
        unnest(generate_series(
            series.first_hour,
            greatest(series.last_hour, coalesce(bounds.last_hour, series.last_hour)),
            interval 1 hour
        )) as hour
    from (
        select provider_id, region, zone, instance_type, product,
            min(hour) as first_hour, max(hour) as last_hour
        from observed
        group by all
    ) as series
    cross join bounds
),

joined as (
    select
        spine.*,
        observed.* exclude (provider_id, region, zone, instance_type, product, hour),
        observed.price_per_cpu_hour_max as observed_max
    from spine
    left join observed using (provider_id, region, zone, instance_type, product, hour)
),

filled as (
    select
        provider_id,
        region,
        zone,
        instance_type,
        product,
        hour,
        {{ carry_forward(
            ['price_per_instance_hour', 'price_per_cpu_hour', 'price_per_gb_hour'],
            'provider_id, region, zone, instance_type, product'
        ) }}
        observed_max,
        coalesce(observations, 0) as observations
    from joined
)

select
    * exclude (observed_max),
    greatest(observed_max, price_per_cpu_hour) as price_per_cpu_hour_max
from filled
