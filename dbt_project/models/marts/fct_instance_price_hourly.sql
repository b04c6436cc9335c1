-- Hourly price of every (zone, instance type, product) series, each carried forward from its
-- own last change: per instance-hour, per cpu-hour and per GiB-hour (when specs give memory).
select
    provider_id,
    region,
    zone,
    instance_type,
    product,
    hour,
    price_per_instance_hour,
    price_per_cpu_hour,
    price_per_gb_hour,
    observations,
    observations > 0 as is_observed
from {{ ref('int_instance_prices_resampled_hourly') }}
