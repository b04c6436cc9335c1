from __future__ import annotations

import pytest

from skyshard.sources.base import PayloadError
from skyshard.sources.fetch import fetch_for_source
from skyshard.sources.registry import ADAPTERS
from tests.sources.conftest import WINDOW, make_source

SMALL = {"providers": 6, "hosts_per_provider": 2, "shards": 16, "days": 7}


def run(source, provider_id="cloud-a"):
    adapter = ADAPTERS["simulated"]
    tables: dict[str, int] = {}
    for request in adapter.requests(source, WINDOW):
        parsed = adapter.parse(request, fetch_for_source(source, request), source, provider_id)
        assert parsed.quarantine == []
        for name, frame in parsed.frames.items():
            tables[name] = tables.get(name, 0) + frame.height
    return tables


def test_simulated_provider_goes_through_the_real_parsers(tmp_path):
    folder = tmp_path / "sim-colo"
    source = make_source("simulated", folder.as_uri(), provider="colo-a", **SMALL)
    tables = run(source, "colo-a")
    assert set(tables) == {
        "shard_usage",
        "host_metrics",
        "latency",
        "incidents",
        "components",
        "prices",
    }
    assert (folder / "usage.csv").exists() and (folder / "prices.csv").exists()
    marker = (folder / ".skyshard-sim.json").stat().st_mtime_ns
    assert run(source, "colo-a") == tables
    assert (folder / ".skyshard-sim.json").stat().st_mtime_ns == marker


def test_unknown_simulated_provider_is_named(tmp_path):
    source = make_source("simulated", (tmp_path / "x").as_uri(), provider="nowhere", **SMALL)
    with pytest.raises(PayloadError, match=r"params\.provider: got 'nowhere'"):
        ADAPTERS["simulated"].requests(source, WINDOW)


def test_bad_simulated_params_are_named(tmp_path):
    source = make_source("simulated", (tmp_path / "x").as_uri(), provider="cloud-a", days=2)
    with pytest.raises(PayloadError, match=r"params\.days"):
        ADAPTERS["simulated"].requests(source, WINDOW)
