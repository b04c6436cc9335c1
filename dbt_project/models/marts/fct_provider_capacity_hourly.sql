-- Hourly capacity and free capacity per host (grain: host × hour), with the provider.
select
    capacity.host_id,
    coalesce(capacity.provider_id, hosts.provider_id) as provider_id,
    hosts.region,
    capacity.hour,
    {% for resource in ['cpu', 'mem_gb', 'gpu', 'net_mbps'] %}
    coalesce(capacity.{{ resource }}_capacity, hosts.{{ resource }}_capacity) as {{ resource }}_capacity,
    capacity.{{ resource }}_free_avg as {{ resource }}_free,
    capacity.{{ resource }}_free_min,
    {% endfor %}
    1 - capacity.cpu_free_avg / nullif(coalesce(capacity.cpu_capacity, hosts.cpu_capacity), 0) as cpu_utilization,
    capacity.samples,
    capacity.is_gap_filled
from {{ ref('int_host_capacity_resampled_hourly') }} as capacity
left join {{ ref('stg_sky__hosts') }} as hosts using (host_id)
