-- Hourly price per cpu-hour per provider and region. Price histories record changes only,
-- so an hour without an observation keeps the last price (step function).
with observed as (
    select
        provider_id,
        region,
        date_trunc('hour', observed_at) as hour,
        avg(price_per_cpu_hour) as price_per_cpu_hour,
        max(price_per_cpu_hour) as price_per_cpu_hour_max,
        count(*) as observations
    from {{ ref('stg_telemetry__prices') }}
    group by all
),

bounds as (
    select first_hour, last_hour from {{ ref('int_telemetry_window') }}
),

spine as (
    select
        series.provider_id,
        series.region,
        unnest(generate_series(
            least(series.first_hour, coalesce(bounds.first_hour, series.first_hour)),
            greatest(series.last_hour, coalesce(bounds.last_hour, series.last_hour)),
            interval 1 hour
        )) as hour
    from (
        select provider_id, region, min(hour) as first_hour, max(hour) as last_hour
        from observed
        group by all
    ) as series
    cross join bounds
),

joined as (
    select spine.provider_id, spine.region, spine.hour, observed.* exclude (provider_id, region, hour)
    from spine
    left join observed using (provider_id, region, hour)
)

select
    provider_id,
    region,
    hour,
    {{ carry_forward(['price_per_cpu_hour', 'price_per_cpu_hour_max'], 'provider_id, region') }}
    coalesce(observations, 0) as observations
from joined
