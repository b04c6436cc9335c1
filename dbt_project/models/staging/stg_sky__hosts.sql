select
    host_id,
    provider_id,
    region,
    cast(cpu as double) as cpu_capacity,
    cast(mem_gb as double) as mem_gb_capacity,
    cast(gpu as double) as gpu_capacity,
    cast(net_mbps as double) as net_mbps_capacity,
    cast(gpu_devices as bigint) as gpu_devices,
    gpu_model,
    cast(gpu_memory_gb as double) as gpu_memory_gb,
    has_pinned_host_key,
    labels
from {{ source('raw', 'sky_hosts') }}
