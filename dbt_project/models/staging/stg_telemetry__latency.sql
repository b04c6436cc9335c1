with source as (
    select * from {{ source('raw', 'latency') }}
)

select distinct on (src_provider_id, dst_provider_id, ts)
    src_provider_id,
    dst_provider_id,
    cast(ts as timestamp) as probed_at,
    cast(rtt_ms as double) as rtt_ms,
    source_id
from source
where rtt_ms is not null and isfinite(rtt_ms) and rtt_ms >= 0
order by src_provider_id, dst_provider_id, ts, fetched_at desc
