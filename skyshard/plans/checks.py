"""Invariants of what planning stores (bottlenecks, trust scores, plans), each query returning
the rows that break it (empty: it holds). The Dagster asset checks run them after each write."""

from __future__ import annotations

import duckdb

BOTTLENECK_PROBLEMS = """
    select shard_id, cause, hours_ahead,
        case when shard_id not in (select shard_id from marts.dim_shards) then 'unknown shard'
             else 'hours_ahead outside 0..' || ? end as problem
    from forecast.predicted_bottlenecks
    where shard_id not in (select shard_id from marts.dim_shards)
       or hours_ahead < 0 or hours_ahead > ?
    order by shard_id, hours_ahead
"""
# The latest run's moves: one per shard, to a host the scores allow, from where the shard was.
PLAN_PROBLEMS = """
    with latest as (
        select * from plan.proposed_moves
        where plan_run_id = (select plan_run_id from plan.plan_runs
                             order by created_at desc, plan_run_id limit 1)
    )
    select move_id, shard_id, 'shard moved twice in one run' as problem from latest
    qualify count(*) over (partition by shard_id) > 1
    union all
    select l.move_id, l.shard_id, 'target ' || l.to_host_id || ' is not an allowed candidate'
    from latest l left join plan.candidate_scores c
        on c.shard_id = l.shard_id and c.host_id = l.to_host_id
    where c.allowed is distinct from true
    union all
    select l.move_id, l.shard_id, 'source ' || l.from_host_id || ' is not the current host'
    from latest l left join plan.candidate_scores c
        on c.shard_id = l.shard_id and c.host_id = l.from_host_id
    where c.is_current is distinct from true
"""
TRUST_PROBLEMS = """
    select p.provider_id, s.score,
        case when s.provider_id is null then 'no score' else 'score outside 0..1' end as problem
    from (select unnest(?::varchar[]) as provider_id) p left join trust.scores s using (provider_id)
    where s.provider_id is null or s.score < 0 or s.score > 1 or isnan(s.score)
    order by p.provider_id
"""


def _problems(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[str]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [
        ", ".join(f"{n}={v}" for n, v in zip(names, row, strict=True)) for row in cursor.fetchall()
    ]


def bottleneck_problems(con: duckdb.DuckDBPyConnection, horizon_h: int) -> list[str]:
    """Bottlenecks of unknown shards or outside the horizon."""
    return _problems(con, BOTTLENECK_PROBLEMS, [horizon_h, horizon_h])


def plan_problems(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Moves of the latest run that move a shard twice, target a blocked or unscored host, or
    start somewhere the shard is not."""
    return _problems(con, PLAN_PROBLEMS)


def trust_problems(con: duckdb.DuckDBPyConnection, provider_ids: list[str]) -> list[str]:
    """Providers of `provider_ids` without a trust score, or with one outside [0, 1]."""
    return _problems(con, TRUST_PROBLEMS, [provider_ids])
