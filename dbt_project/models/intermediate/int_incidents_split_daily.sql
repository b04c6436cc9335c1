-- Each incident or maintenance cut into the UTC days it overlaps, with minutes per day.
-- An open incident runs until the newest telemetry sample; a maintenance ends when resolved,
-- else at its scheduled end (never later), else (announced without an end) at the newest sample.
with last_sample as (
    select coalesce(max(last_sample_at), now()::timestamp) as at
    from {{ ref('int_telemetry_window') }}
),

incidents as (
    select
        incidents.*,
        case
            when kind = 'maintenance' then coalesce(resolved_at, scheduled_until, last_sample.at)
            else coalesce(resolved_at, last_sample.at)
        end as ended_at
    from {{ ref('stg_telemetry__incidents') }} as incidents
    cross join last_sample
),

days as (
    select
        incidents.*,
        unnest(generate_series(date_trunc('day', started_at), date_trunc('day', ended_at), interval 1 day)) as day
    from incidents
    where ended_at >= started_at
)

select
    provider_id,
    incident_id,
    kind,
    impact,
    regions,
    cast(day as date) as day,
    date_diff(
        'second',
        greatest(started_at, day),
        least(ended_at, day + interval 1 day)
    ) / 60.0 as minutes,
    kind = 'incident' and resolved_at is null as is_open
from days
