select
    shard_id,
    workload_id,
    shard_index,
    cast(cpu as double) as cpu_request,
    cast(mem_gb as double) as mem_gb_request,
    cast(gpu as double) as gpu_request,
    cast(net_mbps as double) as net_mbps_request,
    cast(state_gb as double) as state_gb,
    data_class,
    current_host_id,
    allowed_providers,
    allowed_regions,
    anti_affinity,
    endpoints
from {{ source('raw', 'sky_shards') }}
