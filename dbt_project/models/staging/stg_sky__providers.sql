select * from {{ source('raw', 'sky_providers') }}
