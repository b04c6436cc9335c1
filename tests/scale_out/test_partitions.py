"""The scale-out location's partitions, run in process: one telemetry feed per partition, and
forecasts per shard group that add up, group by group, to every series the cycle forecasts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from assets.ingestion import feed_check_name
from orchestration.definitions import build_definitions
from skyshard import db
from skyshard.config import Sky, load_sky
from skyshard.forecast import group_keys, input_fingerprints, series_in_group
from skyshard.scoring import forecast_input, forecast_limits, load_planning_data
from skyshard.sources import ingest
from skyshard.sources.base import Window
from tests.scale_out.test_celery import ingested_feeds


@dataclass
class Built:
    sky: Sky
    duckdb: Path


@pytest.fixture(scope="module")
def built(small_sky, tmp_path_factory) -> Iterator[Built]:
    """The small sky ingested and its features built by the embedded location's job; its
    policy without slow models (their time budget would apply per partition)."""
    policy = small_sky / "policy.yaml"
    settings = yaml.safe_load(policy.read_text())
    settings["forecast"]["slow_models"] = []
    policy.write_text(yaml.safe_dump(settings))
    duckdb = tmp_path_factory.mktemp("db") / "skyshard.duckdb"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("SKYSHARD_HOME", str(small_sky))
        monkeypatch.setenv("SKYSHARD_DUCKDB", str(duckdb))
        sky = load_sky(small_sky)
        job = build_definitions(sky).resolve_job_def("ingest_and_build")
        assert job.execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
        yield Built(sky, duckdb)


def run_partition(
    built: Built, job_name: str, partition: str, monkeypatch
) -> dg.ExecuteInProcessResult:
    monkeypatch.setenv("SKYSHARD_HOME", str(built.sky.home))
    monkeypatch.setenv("SKYSHARD_DUCKDB", str(built.duckdb))
    job = build_definitions(built.sky, partitioned=True).resolve_job_def(job_name)
    return job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=partition, raise_on_error=False
    )


def stored_series(duckdb: Path) -> set[str]:
    with db.connect(duckdb, read_only=True) as con:
        return {sid for (sid,) in con.execute("select series_id from forecast.summary").fetchall()}


def test_forecast_groups_add_up_to_every_series(built, monkeypatch):
    with db.connect(built.duckdb, read_only=True) as con:
        data = load_planning_data(con)
    every = set(
        input_fingerprints(forecast_input(data), built.sky.policy.forecast, forecast_limits(data))
    )
    stored: set[str] = set()
    for group in group_keys():
        result = run_partition(built, "forecast_groups", group, monkeypatch)
        assert result.success, group
        mine = set(series_in_group(every, group))
        stored |= mine
        assert stored_series(built.duckdb) == stored, f"after {group}: earlier groups kept"
        metadata = result.asset_materializations_for_node("forecast__forecasts")[0].metadata
        assert metadata["refitted"].value == len(mine)
    assert stored == every

    again = run_partition(built, "forecast_groups", "group-0", monkeypatch)
    assert (
        again.asset_materializations_for_node("forecast__forecasts")[0].metadata["refitted"].value
        == 0
    )
    assert stored_series(built.duckdb) == every


def test_a_feed_partition_ingests_and_checks_that_feed_only(small_sky, tmp_path, monkeypatch):
    sky = load_sky(small_sky)
    feed = ingest.sources_of(sky.providers)[1][1].id
    result = run_partition(Built(sky, tmp_path / "one.duckdb"), "ingest_feeds", feed, monkeypatch)
    assert result.success
    assert ingested_feeds(str(tmp_path / "one.duckdb")) == {feed}
    checks = [c.check_name for c in result.get_asset_check_evaluations()]
    assert [name for name in checks if name.startswith("feed_")] == [feed_check_name(feed)]
    assert "telemetry_is_recent" in checks


def test_the_scale_out_location_loads_with_its_partitions(small_sky, monkeypatch):
    monkeypatch.setenv("SKYSHARD_HOME", str(small_sky))
    monkeypatch.delenv("SKYSHARD_CELERY_BROKER", raising=False)
    sky = load_sky(small_sky)
    defs = build_definitions(sky, partitioned=True)
    dg.Definitions.validate_loadable(defs)
    feeds = [source.id for _, source in ingest.sources_of(sky.providers)]
    assert defs.resolve_job_def("ingest_feeds").partitions_def.get_partition_keys() == feeds
    forecast_groups = defs.resolve_job_def("forecast_groups")
    assert forecast_groups.partitions_def.get_partition_keys() == group_keys()
    assert forecast_groups.executor_def.name == "multiprocess"
    assert not defs.schedules


def test_an_unknown_feed_is_named(small_sky, tmp_path):
    window = Window(start=datetime(2026, 11, 1), end=datetime(2026, 11, 2))
    with pytest.raises(ValueError, match=r"\['no-such-feed'\] are not sources in .*providers.yaml"):
        ingest.ingest_all(
            load_sky(small_sky), window, tmp_path / "x.duckdb", feeds=["no-such-feed"]
        )
    assert not (tmp_path / "x.duckdb").exists()
