-- Each incident or maintenance cut into the UTC days it overlaps, with minutes per day.
-- Open incidents run until the newest telemetry sample.
with incidents as (
    select
        *,
        coalesce(
            resolved_at,
            (select last_sample_at from {{ ref('int_telemetry_window') }}),
            now()::timestamp
        ) as ended_at
    from {{ ref('stg_telemetry__incidents') }}
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
    cast(day as date) as day,
    date_diff(
        'second',
        greatest(started_at, day),
        least(ended_at, day + interval 1 day)
    ) / 60.0 as minutes,
    resolved_at is null as is_open
from days
