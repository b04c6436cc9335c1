-- One row per provider: contract terms, size and where its telemetry comes from.
with hosts as (
    select
        provider_id,
        count(*) as hosts,
        sum(cpu_capacity) as cpu_capacity,
        sum(mem_gb_capacity) as mem_gb_capacity,
        sum(gpu_capacity) as gpu_capacity
    from {{ ref('stg_sky__hosts') }}
    group by provider_id
)

select
    providers.provider_id,
    providers.kind,
    providers.regions,
    providers.tier,
    providers.price_basis,
    providers.list_price_per_cpu_hour,
    providers.list_price_per_gb_hour,
    providers.egress_per_gb,
    providers.sla_availability,
    providers.allowed_data_classes,
    providers.price_cap_per_cpu_hour,
    providers.source_ids,
    coalesce(hosts.hosts, 0) as hosts,
    coalesce(hosts.cpu_capacity, 0) as cpu_capacity,
    coalesce(hosts.mem_gb_capacity, 0) as mem_gb_capacity,
    coalesce(hosts.gpu_capacity, 0) as gpu_capacity
from {{ ref('stg_sky__providers') }} as providers
left join hosts using (provider_id)
