-- Hourly price per cpu-hour (and per GiB-hour) per provider and region: the mean over the
-- instance series of the configured products (var `price_products`, Linux/UNIX by default),
-- each already carried forward, so the value moves only when some series' price changed.
select
    provider_id,
    region,
    hour,
    avg(price_per_cpu_hour) as price_per_cpu_hour,
    max(price_per_cpu_hour_max) as price_per_cpu_hour_max,
    min(price_per_cpu_hour) as price_per_cpu_hour_min,
    avg(price_per_gb_hour) as price_per_gb_hour,
    count(*) as instance_series,
    sum(observations) as observations
from {{ ref('int_instance_prices_resampled_hourly') }}
where product in (
    {%- for product in var('price_products') %}
    '{{ product | replace("'", "''") }}'{{ "," if not loop.last }}
    {%- endfor %}
)
    and price_per_cpu_hour is not null
group by all
