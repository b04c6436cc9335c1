select
    shard_id,
    depends_on_shard_id,
    cast(max_latency_ms as double) as max_latency_ms
from {{ source('raw', 'sky_shard_dependencies') }}
