-- Availability per provider per UTC day: incident and maintenance minutes and counts.
with days as (
    select cast(unnest(generate_series(
        date_trunc('day', first_hour), date_trunc('day', last_hour), interval 1 day
    )) as date) as day
    from {{ ref('int_telemetry_window') }}
),

spine as (
    select providers.provider_id, days.day
    from {{ ref('stg_sky__providers') }} as providers
    cross join days
),

per_day as (
    select
        provider_id,
        day,
        sum(minutes) filter (where kind = 'incident') as incident_minutes,
        sum(minutes) filter (where kind = 'maintenance') as maintenance_minutes,
        count(distinct incident_id) filter (where kind = 'incident') as incidents,
        count(distinct incident_id) filter (where kind = 'maintenance') as maintenances,
        count(distinct incident_id) filter (where kind = 'incident' and impact in ('major', 'critical')) as major_incidents,
        bool_or(is_open) as has_open_incident
    from {{ ref('int_incidents_split_daily') }}
    group by all
)

select
    spine.provider_id,
    spine.day,
    coalesce(per_day.incident_minutes, 0) as incident_minutes,
    coalesce(per_day.maintenance_minutes, 0) as maintenance_minutes,
    coalesce(per_day.incidents, 0) as incidents,
    coalesce(per_day.maintenances, 0) as maintenances,
    coalesce(per_day.major_incidents, 0) as major_incidents,
    coalesce(per_day.has_open_incident, false) as has_open_incident,
    greatest(0, 1 - coalesce(per_day.incident_minutes, 0) / 1440.0) as availability
from spine
left join per_day using (provider_id, day)
