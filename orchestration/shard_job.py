"""Job `shard_lifecycle`: start, adopt or stop one shard from the UI (what `skyshard shard`
does), registering it in routing so that the planner may move it."""

from typing import Literal

import dagster as dg
from pydantic import Field

from orchestration.resources import DuckDBFile, LedgerResource, SkyResource
from skyshard.broker import lifecycle
from skyshard.broker.execute import recording_policy
from skyshard.broker.from_config import host_accesses
from skyshard.broker.ops_tables import OpsStore
from skyshard.transport.ssh import ConnectionPool


class ShardAction(dg.Config):
    action: Literal["start", "adopt", "stop"] = Field(description="What to do with the shard.")
    shard_id: str = Field(description="A shard of workloads.yaml.")
    host_id: str | None = Field(
        default=None, description="start: host (default routed, else configured); adopt: host."
    )
    port: int | None = Field(default=None, description="start/adopt: the port it serves on.")
    pid: int | None = Field(default=None, description="adopt: its process id.")
    state: str | None = Field(default=None, description="adopt: its state directory.")


def _adopt_arguments(config: ShardAction) -> tuple[str, int, int, str]:
    missing = [
        name for name in ("host_id", "port", "pid", "state") if getattr(config, name) is None
    ]
    if missing:
        raise dg.Failure(f"adopt {config.shard_id}: give {', '.join(missing)}", allow_retries=False)
    return config.host_id, config.port, config.pid, config.state  # type: ignore[return-value]


@dg.op(description="Start, adopt or stop one shard over SSH and update its routing entry.")
def change_shard(
    context: dg.OpExecutionContext,
    config: ShardAction,
    duckdb: DuckDBFile,
    sky: SkyResource,
    ledger: LedgerResource,
):
    loaded = sky.load()
    policy = recording_policy(loaded, context.run_id, ledger.open())
    ops = OpsStore(duckdb.path)
    with ConnectionPool() as pool:
        pinned = [h for h, (_, host) in loaded.hosts.items() if host.host_key]
        hosts = host_accesses(loaded, pinned, pool, policy)
        if config.action == "stop":
            lifecycle.stop_shard(ops, hosts, config.shard_id, loaded)
            context.log.info(f"stopped {config.shard_id}; not routed any more")
            return dg.Output(None, metadata={"routed": False})
        if config.action == "start":
            route = lifecycle.start_shard(
                loaded, ops, hosts, config.shard_id, host_id=config.host_id, port=config.port
            )
        else:
            host_id, port, pid, state = _adopt_arguments(config)
            route = lifecycle.adopt_shard(loaded, ops, hosts, config.shard_id, host_id=host_id,
                                          port=port, pid=pid, state=state)  # fmt: skip
    context.log.info(f"{config.action}: {config.shard_id} on {route.host_id} "
                     f"{route.address}:{route.port}")  # fmt: skip
    return dg.Output(
        None,
        metadata={
            "host_id": route.host_id,
            "address": f"{route.address}:{route.port}",
            "generation": route.generation,
        },
    )


@dg.job(description="Start, adopt or stop one shard (config: action, shard_id, host, port ...).")
def shard_lifecycle():
    change_shard()


defs = dg.Definitions(jobs=[shard_lifecycle])
