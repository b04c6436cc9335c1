from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import orjson
import pytest

from skyshard.config import load_sky
from skyshard.sim import DEFAULT_PARAMS, SkyParams, write_sky
from skyshard.sources.base import Window
from skyshard.sources.fetch import fetch_for_source
from skyshard.sources.registry import ADAPTERS

SMALL = SkyParams(providers=6, hosts_per_provider=2, shards=20, days=7, seed=3)


def digest(home: Path) -> dict[str, str]:
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file()
    }


def ingest(home: Path) -> tuple[dict, list]:
    """Every source of the written sky through fetch + the real adapters."""
    sky = load_sky(home)
    frames: dict[str, list] = {}
    quarantine = []
    window = Window(DEFAULT_PARAMS.start, DEFAULT_PARAMS.end)
    for provider in sky.providers:
        for source in provider.sources:
            adapter = ADAPTERS[source.type]
            for request in adapter.requests(source, window):
                parsed = adapter.parse(
                    request, fetch_for_source(source, request), source, provider.id
                )
                for name, frame in parsed.frames.items():
                    frames.setdefault(name, []).append(frame)
                quarantine += parsed.quarantine
    import polars as pl

    return {name: pl.concat(parts) for name, parts in frames.items()}, quarantine


@pytest.fixture(scope="module")
def default_sky(tmp_path_factory):
    home = tmp_path_factory.mktemp("sky")
    manifest = write_sky(DEFAULT_PARAMS, home)
    return home, manifest


def providers_text(home: Path) -> str:
    """providers.yaml with the folder and the (random) pinned host keys masked."""
    text = (home / "providers.yaml").read_text().replace(str(home), "HOME")
    return re.sub(r"host_key: ssh-ed25519 \S+ ", "host_key: KEY ", text)


def test_same_seed_same_bytes(tmp_path):
    write_sky(SMALL, tmp_path / "a")
    write_sky(SMALL, tmp_path / "b")
    first, second = digest(tmp_path / "a"), digest(tmp_path / "b")
    # Key material is random by design; paths inside providers.yaml differ by folder.
    for files in (first, second):
        keys = [name for name in files if name.startswith("keys/")]
        assert len(keys) == 2 * 6 + 5  # hosts, client key pair, transfer CA pair, authorized
        for name in [*keys, "providers.yaml"]:
            files.pop(name)
    assert first == second
    assert providers_text(tmp_path / "a") == providers_text(tmp_path / "b")
    assert "host_key: KEY skyshard-host-cloud-a-h00" in providers_text(tmp_path / "a")


def test_other_seed_other_series(tmp_path):
    write_sky(SMALL, tmp_path / "a")
    write_sky(SkyParams(**{**SMALL.__dict__, "seed": 4}), tmp_path / "b")
    cpu = "captures/cloud-a/prometheus/shard_cpu.json"
    assert digest(tmp_path / "a")[cpu] != digest(tmp_path / "b")[cpu]


def test_default_sky_loads_and_matches_the_manifest(default_sky):
    home, manifest = default_sky
    sky = load_sky(home)
    assert len(sky.providers) == 6 == len(manifest.provider_ids)
    assert {p.kind for p in sky.providers} == {"cloud", "colo", "edge", "marketplace"}
    assert len(sky.hosts) == 24 == manifest.host_count
    assert len(sky.shards) == 48 == manifest.shard_count
    for host_id, (_, host) in sky.hosts.items():
        assert host.host_key.startswith("ssh-ed25519 ")
        assert (home / "keys" / "hosts" / host_id).stat().st_mode & 0o777 == 0o600
        assert host.root == str(home / "hosts" / host_id)
    assert any(s.depends_on for s in sky.shards)
    assert {s.data_class for s in sky.shards} >= {"public", "internal", "confidential"}
    types = {s.type for p in sky.providers for s in p.sources}
    assert types == {
        "prometheus",
        "statuspage",
        "aws_spot_price_history",
        "csv_usage",
        "csv_prices",
    }
    urls = [s.url for p in sky.providers for s in p.sources]
    assert all(u.startswith("file:///") and str(home) in u for u in urls)
    assert any(u.endswith(".csv") and "spot" in u for u in urls)


def test_every_capture_parses_cleanly_and_planted_signals_show(default_sky):
    home, manifest = default_sky
    frames, quarantine = ingest(home)
    assert quarantine == []
    planted = json.loads((home / "planted.json").read_text())
    assert planted == manifest.planted
    usage = frames["shard_usage"]
    assert usage.height == 48 * 3 * DEFAULT_PARAMS.steps
    assert usage["ts"].min() == DEFAULT_PARAMS.start
    assert usage["ts"].max() == DEFAULT_PARAMS.end - dt.timedelta(minutes=5)

    (incident,) = planted["incidents"]
    rows = frames["incidents"].filter(frames["incidents"]["incident_id"] == incident["incident_id"])
    assert rows["provider_id"].to_list() == [incident["provider_id"]]
    assert rows["started_at"].to_list() == [dt.datetime.fromisoformat(incident["start"])]
    assert rows["resolved_at"].to_list() == [dt.datetime.fromisoformat(incident["end"])]
    (maintenance,) = planted["maintenances"]
    rows = frames["incidents"].filter(
        frames["incidents"]["incident_id"] == maintenance["incident_id"]
    )
    assert rows["kind"].to_list() == ["maintenance"]
    assert rows["resolved_at"].to_list() == [dt.datetime.fromisoformat(maintenance["end"])]

    (spike,) = planted["price_spikes"]
    prices = frames["prices"].filter(frames["prices"]["provider_id"] == spike["provider_id"])
    start, end = (dt.datetime.fromisoformat(spike[k]) for k in ("start", "end"))
    inside = prices.filter((prices["ts"] >= start) & (prices["ts"] < end))
    before = prices.filter((prices["ts"] >= start - dt.timedelta(hours=6)) & (prices["ts"] < start))
    assert inside["price"].median() > 2.5 * before["price"].median()

    assert 2 <= len(planted["growing_shards"]) <= 3
    for grower in planted["growing_shards"]:
        crossing = dt.datetime.fromisoformat(grower["expected_crossing"])
        assert DEFAULT_PARAMS.end < crossing <= DEFAULT_PARAMS.end + dt.timedelta(hours=24)
        cpu = usage.filter((usage["shard_id"] == grower["shard_id"]) & (usage["metric"] == "cpu"))
        first_day = cpu.filter(cpu["ts"] < DEFAULT_PARAMS.start + dt.timedelta(days=1))[
            "value"
        ].mean()
        last_hours = cpu.filter(cpu["ts"] >= DEFAULT_PARAMS.end - dt.timedelta(hours=3))[
            "value"
        ].mean()
        # 72 h of growth at the planted rate, less noise and the daily cycle.
        assert last_hours > first_day + 0.8 * 72 * grower["growth_per_hour"]
        free = frames["host_metrics"].filter(
            (frames["host_metrics"]["host_id"] == grower["host_id"])
            & (frames["host_metrics"]["metric"] == "cpu_free")
        )
        assert free.sort("ts")["value"][-1] < 0.15 * grower["host_capacity"]

    latency = frames["latency"]
    base = planted["latency_ms"]["base"]
    pair = latency.filter(
        (latency["src_provider_id"] == "cloud-a") & (latency["dst_provider_id"] == "cloud-b")
    )
    assert pair["rtt_ms"].median() == pytest.approx(base["cloud-a"]["cloud-b"], rel=0.15)


def test_host_free_capacity_is_within_capacity(default_sky):
    home, _ = default_sky
    for path in (home / "captures").glob("*/prometheus/host_cpu_free.json"):
        capacity = orjson.loads(path.with_name("host_cpu_capacity.json").read_bytes())
        free = orjson.loads(path.read_bytes())
        for cap_series, free_series in zip(capacity["data"]["result"], free["data"]["result"]):
            cap = float(cap_series["values"][0][1])
            values = [float(v) for _, v in free_series["values"]]
            assert min(values) >= 0 and max(values) <= cap


def test_scale_parameters_are_honoured(tmp_path):
    params = SkyParams(providers=8, hosts_per_provider=3, shards=70, days=7, seed=11)
    manifest = write_sky(params, tmp_path)
    sky = load_sky(tmp_path)
    assert len(sky.providers) == 8 and len(sky.hosts) == 24 and len(sky.shards) == 70
    assert manifest.shard_count == 70
    cpu = orjson.loads((tmp_path / "captures/cloud-a/prometheus/host_cpu_free.json").read_bytes())
    assert len(cpu["data"]["result"][0]["values"]) == 7 * 288


@pytest.mark.slow
def test_large_sky_generates(tmp_path):
    manifest = write_sky(SkyParams(providers=12, shards=1000), tmp_path)
    assert manifest.shard_count == 1000
    assert len(load_sky(tmp_path).providers) == 12


@pytest.mark.parametrize(
    ("field", "value"), [("providers", 0), ("days", 3), ("step_minutes", 7), ("shards", 0)]
)
def test_invalid_params_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"{field}={value}"):
        SkyParams(**{field: value})
