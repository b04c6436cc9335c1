"""Two machines: two Celery workers in separate network namespaces (their own non-loopback
addresses) reach Dagster's Postgres and the Redis broker on a bridge address, ingest the feed
partitions of `ingest_feeds` into the shared lake (`SKYSHARD_LAKE_DIR`) without the DuckDB
file; the machine that holds the DuckDB file builds the features with dbt on views over the
lake; the workers forecast every shard group (`forecast_groups`) into the lake from the read
snapshot, without writing the file; and the file's machine plans on those forecasts
(`plan_from_forecasts`)."""

from __future__ import annotations

import socket
import subprocess
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from skyshard.config import load_sky
from skyshard.forecast import group_keys
from skyshard.sources import ingest
from tests.scale_out.conftest import scale_out_env
from tests.scale_out.test_celery import (
    RUN_TIMEOUT_S,
    celery_worker,
    celery_workers_of_runs,
    launch_run,
)
from tests.scale_out.test_dagster_postgres import INSTANCE_YAML, dagster_url
from tests.support.netns import BRIDGE_HOST, Namespaces, netns_missing_reason
from tests.support.postgres import require_postgres, running_postgres
from tests.support.redis import require_redis, running_redis

pytestmark = pytest.mark.root
BATCH = 4
"""Partition runs launched at once (each a Dagster process on this 2-core machine)."""


def redis_client_addresses(url: str) -> set[str]:
    """The addresses of the clients connected to the Redis server at `url` now."""
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"CLIENT LIST\r\n")
        reply = b""
        while not reply.endswith(b"\r\n") or reply.count(b"\r\n") < 2:
            reply += sock.recv(65536)
    return {
        field.split("=", 1)[1].rsplit(":", 1)[0]
        for line in reply.decode().splitlines()[1:]
        for field in line.split()
        if field.startswith("addr=")
    }


def finished(runs: list[subprocess.Popen]) -> None:
    for run in runs:
        output = run.communicate(timeout=RUN_TIMEOUT_S)[0]
        assert run.returncode == 0, output[-4000:]


def test_workers_on_two_machines_write_the_lake_and_dbt_reads_it(small_sky, tmp_path, monkeypatch):
    if reason := netns_missing_reason():
        pytest.skip(reason)
    require_postgres()
    require_redis()
    feeds = [source.id for _, source in ingest.sources_of(load_sky(small_sky).providers)]
    groups = group_keys()
    policy = small_sky / "policy.yaml"  # no slow models: their budget applies per partition
    settings = yaml.safe_load(policy.read_text())
    settings["forecast"]["slow_models"] = []
    policy.write_text(yaml.safe_dump(settings))
    lake = tmp_path / "lake"  # the shared volume: every "machine" mounts it at this path
    env = scale_out_env(small_sky, tmp_path) | {"SKYSHARD_LAKE_DIR": str(lake)}
    # The workers see the file's snapshot folder `<db>.read` at the same path (one file
    # system here); the file itself they must neither create nor write.
    database = Path(env["SKYSHARD_DUCKDB"])
    with ExitStack() as stack:
        hosts = Namespaces(2)
        stack.callback(hosts.close)
        hosts.open()
        bridge = f"{hosts.subnet}.{BRIDGE_HOST}"
        server = stack.enter_context(running_postgres(host=bridge, clients=f"{hosts.subnet}.0/24"))
        broker = stack.enter_context(running_redis(tmp_path / "redis", host=bridge))
        (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text(
            INSTANCE_YAML.read_text()
            + "code_servers:\n  wait_for_local_processes_on_shutdown: true\n"
        )
        env |= {
            "SKYSHARD_CELERY_BROKER": broker,
            "SKYSHARD_DAGSTER_POSTGRES_URL": dagster_url(server.create_database()),
            "SKYSHARD_STATE_URL": server.create_database(),
        }
        for index in (1, 2):
            name = f"w{index}"
            stack.enter_context(
                celery_worker(
                    name,
                    env,
                    tmp_path / f"{name}.log",
                    prefix=hosts.exec_prefix(index),
                )
            )
        clients = redis_client_addresses(broker)
        for start in range(0, len(feeds), BATCH):
            finished(
                [launch_run("ingest_feeds", env, feed) for feed in feeds[start : start + BATCH]]
            )
        created_by_ingest = database.exists()
        # The DuckDB file's machine (this namespace) builds the features on the lake.
        finished([launch_run("build_features", env)])
        before = database.stat().st_mtime_ns
        for start in range(0, len(groups), BATCH):
            finished([launch_run("forecast_groups", env, g) for g in groups[start : start + BATCH]])
        written_by_forecasts = database.stat().st_mtime_ns != before
        finished([launch_run("plan_from_forecasts", env)])
        for name in ("DAGSTER_HOME", "SKYSHARD_DAGSTER_POSTGRES_URL"):
            monkeypatch.setenv(name, env[name])
        with dg.DagsterInstance.get() as instance:
            workers = celery_workers_of_runs(instance)
            storage = type(instance.run_storage).__module__

    assert {hosts.address(1), hosts.address(2)} <= clients
    assert storage.startswith("dagster_postgres")
    assert sorted(workers) == sorted(feeds + groups) and set(workers.values()) == {"w1", "w2"}
    assert not created_by_ingest and not written_by_forecasts
    assert not list(lake.rglob(".*.tmp"))
    usage = sorted(p.stem for p in (lake / "raw" / "shard_usage").glob("*.parquet"))
    assert usage and set(usage) <= set(feeds)
    summaries = {p.stem for p in (lake / "forecast" / "summary").glob("*.parquet")}
    assert summaries and summaries <= set(groups)
    with duckdb.connect(env["SKYSHARD_DUCKDB"], read_only=True) as con:
        kind = con.execute(
            "select table_type from information_schema.tables "
            "where table_schema = 'raw' and table_name = 'shard_usage'"
        ).fetchone()
        forecast_kinds = con.execute(
            "select distinct table_type from information_schema.tables "
            "where table_schema = 'forecast' and table_name in ('forecasts', 'backtest', 'summary')"
        ).fetchall()
        forecast_series = con.execute(
            "select count(distinct series_id) from forecast.summary"
        ).fetchone()
        plans = con.execute("select count(*) from plan.plan_runs").fetchone()
        sources = con.execute("select distinct source_id from raw.shard_usage").fetchall()
        hourly = con.execute(
            "select count(distinct shard_id) from marts.fct_shard_usage_hourly"
        ).fetchone()
    assert kind == ("VIEW",)
    assert sorted(s for (s,) in sources) == usage
    assert hourly[0] > 0
    assert forecast_kinds == [("VIEW",)] and forecast_series[0] > 0 and plans[0] >= 1
