-- Round-trip latency between provider networks: p50 and p95 over the ingested window.
-- A provider's latency to itself is its intra-network figure where probed.
select
    src_provider_id,
    dst_provider_id,
    quantile_cont(rtt_ms, 0.5) as p50_ms,
    quantile_cont(rtt_ms, 0.95) as p95_ms,
    avg(rtt_ms) as mean_ms,
    count(*) as probes,
    min(probed_at) as first_probe_at,
    max(probed_at) as last_probe_at
from {{ ref('stg_telemetry__latency') }}
group by all
