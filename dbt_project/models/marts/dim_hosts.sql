-- One row per host: configured capacity, what its current shards request, and headroom.
with placed as (
    select
        current_host_id as host_id,
        count(*) as shards,
        sum(cpu_request) as cpu_requested,
        sum(mem_gb_request) as mem_gb_requested,
        sum(net_mbps_request) as net_mbps_requested
    from {{ ref('stg_sky__shards') }}
    group by current_host_id
)

select
    hosts.*,
    coalesce(placed.shards, 0) as shards,
    coalesce(placed.cpu_requested, 0) as cpu_requested,
    coalesce(placed.mem_gb_requested, 0) as mem_gb_requested,
    coalesce(placed.net_mbps_requested, 0) as net_mbps_requested,
    hosts.cpu_capacity - coalesce(placed.cpu_requested, 0) as cpu_unrequested
from {{ ref('stg_sky__hosts') }} as hosts
left join placed using (host_id)
