-- Current spot interruption advice per provider region, instance type and OS, and the region
-- mean the scorer uses as the monthly interruption rate of spot capacity there.
select
    *,
    avg(interruption_pct) over (partition by provider_id, region, product) as region_interruption_pct
from {{ ref('stg_telemetry__spot_interruption') }}
