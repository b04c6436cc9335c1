-- Hourly host capacity and free capacity per resource; gaps carry the last value forward.
with hourly as (
    select
        host_id,
        any_value(provider_id) as provider_id,
        date_trunc('hour', sampled_at) as hour,
        {% for resource in ['cpu', 'mem_gb', 'gpu', 'net_mbps'] %}
        avg(value) filter (where resource = '{{ resource }}' and measure = 'capacity') as {{ resource }}_capacity,
        avg(value) filter (where resource = '{{ resource }}' and measure = 'free') as {{ resource }}_free_avg,
        min(value) filter (where resource = '{{ resource }}' and measure = 'free') as {{ resource }}_free_min,
        {% endfor %}
        count(*) as samples
    from {{ ref('stg_telemetry__host_metrics') }}
    group by host_id, date_trunc('hour', sampled_at)
),

spine as (
    select host_id, unnest(generate_series(min(hour), max(hour), interval 1 hour)) as hour
    from hourly
    group by host_id
),

joined as (
    select spine.host_id, spine.hour, hourly.* exclude (host_id, hour)
    from spine
    left join hourly using (host_id, hour)
)

select
    host_id,
    hour,
    {{ carry_forward(['provider_id', 'cpu_capacity', 'cpu_free_avg', 'cpu_free_min', 'mem_gb_capacity', 'mem_gb_free_avg', 'mem_gb_free_min', 'gpu_capacity', 'gpu_free_avg', 'gpu_free_min', 'net_mbps_capacity', 'net_mbps_free_avg', 'net_mbps_free_min'], 'host_id') }}
    coalesce(samples, 0) as samples,
    samples is null as is_gap_filled
from joined
