-- Hourly shard usage with the features the forecasts and the planner read: utilisation of the
-- request, the same hour a day and a week earlier, and a trailing 24 h mean.
with usage as (
    select * from {{ ref('int_shard_usage_resampled_hourly') }}
)

select
    usage.shard_id,
    shards.current_host_id as host_id,
    shards.current_provider_id as provider_id,
    usage.hour,
    usage.cpu_avg,
    usage.cpu_max,
    usage.mem_gb_avg,
    usage.mem_gb_max,
    usage.net_mbps_avg,
    usage.net_mbps_max,
    usage.cpu_avg / nullif(shards.cpu_request, 0) as cpu_utilization,
    usage.mem_gb_avg / nullif(shards.mem_gb_request, 0) as mem_utilization,
    lag(usage.cpu_avg, 24) over w as cpu_avg_lag_24h,
    lag(usage.cpu_avg, 168) over w as cpu_avg_lag_168h,
    avg(usage.cpu_avg) over (w rows between 23 preceding and current row) as cpu_avg_trailing_24h,
    usage.samples,
    usage.is_gap_filled
from usage
left join {{ ref('dim_shards') }} as shards using (shard_id)
window w as (partition by usage.shard_id order by usage.hour)
