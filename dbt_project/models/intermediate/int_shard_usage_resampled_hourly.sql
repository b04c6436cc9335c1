{{ config(materialized='table') }}
-- Hourly shard usage on a gap-free hour spine; empty hours carry the last observed value
-- forward and are flagged, so forecasts see a regular series and users see the gaps.
with hourly as (
    select
        shard_id,
        date_trunc('hour', sampled_at) as hour,
        avg(value) filter (where metric = 'cpu') as cpu_avg,
        max(value) filter (where metric = 'cpu') as cpu_max,
        avg(value) filter (where metric = 'mem_gb') as mem_gb_avg,
        max(value) filter (where metric = 'mem_gb') as mem_gb_max,
        avg(value) filter (where metric = 'net_mbps') as net_mbps_avg,
        max(value) filter (where metric = 'net_mbps') as net_mbps_max,
        count(*) as samples
    from {{ ref('stg_telemetry__shard_usage') }}
    group by all
),

spine as (
    select shard_id, unnest(generate_series(min(hour), max(hour), interval 1 hour)) as hour
    from hourly
    group by shard_id
),

joined as (
    select spine.shard_id, spine.hour, hourly.* exclude (shard_id, hour)
    from spine
    left join hourly using (shard_id, hour)
)

select
    shard_id,
    hour,
    {{ carry_forward(['cpu_avg', 'cpu_max', 'mem_gb_avg', 'mem_gb_max', 'net_mbps_avg', 'net_mbps_max'], 'shard_id') }}
    coalesce(samples, 0) as samples,
    samples is null as is_gap_filled
from joined
