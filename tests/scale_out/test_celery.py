"""The Celery executor on this machine: a real redis-server as broker, two real
`dagster-celery` worker processes, and partition runs of `ingest_feeds` whose steps the two
workers share."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from skyshard.config import load_sky
from skyshard.sources import ingest
from skyshard.sources.raw_tables import INGEST_TABLES
from tests.scale_out.conftest import ROOT, scale_out_env
from tests.support.redis import require_redis, running_redis

BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 120
RUN_TIMEOUT_S = 600


@contextmanager
def celery_worker(
    name: str, env: dict[str, str], log: Path, prefix: Sequence[str] = ()
) -> Iterator[None]:
    """One `dagster-celery worker start` (solo pool: one step at a time), stopped with its
    process group (the command starts `celery` as a child); `prefix` runs it elsewhere (in a
    network namespace: `ip netns exec NAME`)."""
    command = [
        *prefix,
        str(BIN / "dagster-celery"), "worker", "start",
        "-A", "dagster_celery.app",
        "-y", str(ROOT / "orchestration" / "celery.yaml"),
        "-n", name,
        "--", "--pool", "solo",
    ]  # fmt: skip
    with log.open("w") as out:
        worker = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "ready." not in log.read_text():
            assert worker.poll() is None, f"worker {name} exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"worker {name} not ready: {log.read_text()}"
            time.sleep(0.2)
        yield
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


def launch_run(job: str, env: dict[str, str], partition: str | None = None) -> subprocess.Popen:
    """A run of the scale-out location's `job` (of one partition) through Dagster's CLI."""
    tags = ["--tags", json.dumps({"dagster/partition": partition})] if partition else []
    return subprocess.Popen(
        [str(BIN / "dagster"), "job", "execute", "-m", "orchestration.scale_out", "-j", job,
         *tags],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def celery_workers_of_runs(instance: dg.DagsterInstance) -> dict[str, str]:
    """Run partition → the Celery worker (name before `@host`) that executed its step, from
    the engine events the workers report."""
    workers = {}
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            metadata = record.dagster_event.engine_event_data.metadata
            if "Celery worker" in metadata:
                workers[run.tags["dagster/partition"]] = metadata["Celery worker"].text
    return {partition: name.split("@")[0] for partition, name in workers.items()}


def ingested_feeds(database: str) -> set[str]:
    with duckdb.connect(database, read_only=True) as con:
        return {
            source
            for table in INGEST_TABLES
            for (source,) in con.execute(
                f"select distinct source_id from raw.{table.name}"
            ).fetchall()
        }


def test_two_celery_workers_share_the_partitions_of_a_job(small_sky, tmp_path, monkeypatch):
    require_redis()
    feeds = [source.id for _, source in ingest.sources_of(load_sky(small_sky).providers)][:4]
    env = scale_out_env(small_sky, tmp_path)
    with ExitStack() as stack:
        env["SKYSHARD_CELERY_BROKER"] = stack.enter_context(running_redis(tmp_path / "redis"))
        for name in ("w1", "w2"):
            stack.enter_context(celery_worker(name, env, tmp_path / f"{name}.log"))
        runs = [launch_run("ingest_feeds", env, feed) for feed in feeds]
        outputs = [run.communicate(timeout=RUN_TIMEOUT_S)[0] for run in runs]
        for run, output in zip(runs, outputs, strict=True):
            assert run.returncode == 0, output[-4000:]

    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        workers = celery_workers_of_runs(instance)
    assert sorted(workers) == sorted(feeds)
    assert set(workers.values()) == {"w1", "w2"}
    assert ingested_feeds(env["SKYSHARD_DUCKDB"]) == set(feeds)
