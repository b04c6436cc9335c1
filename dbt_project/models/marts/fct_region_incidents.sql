-- Availability per provider region per UTC day. An incident naming components mapped to
-- regions (statuspage `component_regions`) counts in those regions only; one naming none
-- counts in every region of its provider.
with days as (
    select cast(unnest(generate_series(
        date_trunc('day', first_hour), date_trunc('day', last_hour), interval 1 day
    )) as date) as day
    from {{ ref('int_telemetry_window') }}
),

regions as (
    select provider_id, unnest(regions) as region
    from {{ ref('stg_sky__providers') }}
),

spine as (
    select regions.provider_id, regions.region, days.day
    from regions
    cross join days
),

per_day as (
    select
        regions.provider_id,
        regions.region,
        split.day,
        sum(split.minutes) filter (where split.kind = 'incident') as incident_minutes,
        sum(split.minutes) filter (where split.kind = 'maintenance') as maintenance_minutes,
        count(distinct split.incident_id) filter (where split.kind = 'incident') as incidents,
        count(distinct split.incident_id) filter (where split.kind = 'maintenance') as maintenances,
        bool_or(split.is_open) as has_open_incident
    from {{ ref('int_incidents_split_daily') }} as split
    inner join regions
        on split.provider_id = regions.provider_id
        and (len(split.regions) = 0 or list_contains(split.regions, regions.region))
    group by all
)

select
    spine.provider_id,
    spine.region,
    spine.day,
    coalesce(per_day.incident_minutes, 0) as incident_minutes,
    coalesce(per_day.maintenance_minutes, 0) as maintenance_minutes,
    coalesce(per_day.incidents, 0) as incidents,
    coalesce(per_day.maintenances, 0) as maintenances,
    coalesce(per_day.has_open_incident, false) as has_open_incident,
    greatest(0, 1 - least(coalesce(per_day.incident_minutes, 0), 1440) / 1440.0) as availability
from spine
left join per_day using (provider_id, region, day)
