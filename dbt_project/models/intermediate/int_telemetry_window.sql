{{ config(materialized='table') }}
-- The hours the shard telemetry covers: the spine every hourly and daily mart is built on.
-- Read straight from raw (min/max need no deduplication), so marts need not rescan staging.
select
    date_trunc('hour', min(ts)) as first_hour,
    date_trunc('hour', max(ts)) as last_hour,
    max(ts) as last_sample_at
from {{ source('raw', 'shard_usage') }}
