-- Incidents and maintenances; the latest fetched version of each incident wins.
with source as (
    select * from {{ source('raw', 'incidents') }}
),

renamed as (
    select
        provider_id,
        incident_id,
        kind,
        name,
        status,
        impact,
        cast(started_at as timestamp) as started_at,
        cast(resolved_at as timestamp) as resolved_at,
        cast(scheduled_until as timestamp) as scheduled_until,
        cast(updated_at as timestamp) as updated_at,
        components,
        coalesce(regions, []) as regions,
        source_id,
        fetched_at
    from source
    where started_at is not null
)

select * exclude (recency)
from (
    select
        *,
        row_number() over (
            partition by provider_id, incident_id order by updated_at desc nulls last, fetched_at desc
        ) as recency
    from renamed
)
where recency = 1
