from __future__ import annotations

from pathlib import Path

from skyshard.config import load_sky
from skyshard.sim import DEFAULT_PARAMS
from skyshard.sources.base import Window
from skyshard.sources.registry import ADAPTERS

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_example_config_loads():
    sky = load_sky(CONFIG)
    assert {p.kind for p in sky.providers} == {"cloud", "colo", "edge"}
    assert len(sky.shard_by_id) == 4 + 4 + 2
    assert sky.shard_by_id["checkout-api-000"].depends_on[0].max_latency_ms == 20


def test_example_sources_have_valid_params():
    sky = load_sky(CONFIG)
    window = Window(DEFAULT_PARAMS.start, DEFAULT_PARAMS.end)
    for provider in sky.providers:
        for source in provider.sources:
            assert ADAPTERS[source.type].requests(source, window)
