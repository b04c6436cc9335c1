"""Source type `simulated`: one provider of a simulated sky, parsed by the real adapters.

Params: `provider` (the provider id inside the simulated sky, e.g. `cloud-a`) and any
SkyParams field (`seed`, `providers`, `hosts_per_provider`, `shards`, `days`,
`step_minutes`, `end`). The url is a `file://` folder where the provider's captures are
generated on first use (and regenerated when the params change); each capture is then
fetched and parsed exactly as a saved capture of its real source type would be.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import orjson
from pydantic import BaseModel, ConfigDict, Field

from skyshard.config.providers import Source
from skyshard.sim.layout import build_layout, source_docs
from skyshard.sim.params import SkyParams
from skyshard.sim.sky import simulate, write_provider_captures
from skyshard.sources.base import Adapter, FetchRequest, Parsed, PayloadError, Window
from skyshard.sources.fetch import file_url_path
from skyshard.sources.frames import parse_params

MARKER = ".skyshard-sim.json"
_DEFAULTS = SkyParams()


class SimulatedParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    seed: int = _DEFAULTS.seed
    providers: int = Field(default=_DEFAULTS.providers, ge=1, le=100)
    hosts_per_provider: int = Field(default=_DEFAULTS.hosts_per_provider, ge=1, le=1000)
    shards: int = Field(default=_DEFAULTS.shards, ge=1, le=100_000)
    days: int = Field(default=_DEFAULTS.days, ge=7, le=366)
    step_minutes: int = Field(default=_DEFAULTS.step_minutes, ge=1, le=1440)
    end: datetime = _DEFAULTS.end

    def sky_params(self) -> SkyParams:
        return SkyParams(**self.model_dump(exclude={"provider"}))


class SimulatedAdapter:
    """Source type `simulated`."""

    type = "simulated"
    tables = ("shard_usage", "host_metrics", "prices", "incidents", "components", "latency")
    params_model = SimulatedParams

    def __init__(self, capture_adapters: Mapping[str, Adapter]) -> None:
        self._real = capture_adapters
        """The adapters of the capture formats the simulator writes, by source type."""

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        params, folder = self._setup(source)
        _ensure_captures(params, folder, source)
        return [
            FetchRequest(f"{inner.id}/{request.name}", request.url)
            for inner in _inner_sources(params, folder, source)
            for request in self._real[inner.type].requests(inner, window)
        ]

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        params, folder = self._setup(source)
        inner_id, _, inner_name = request.name.partition("/")
        inner = next((s for s in _inner_sources(params, folder, source) if s.id == inner_id), None)
        if inner is None:
            raise PayloadError(source.id, request.url, f"no simulated feed {inner_id!r}")
        inner_request = FetchRequest(inner_name, request.url)
        try:
            return self._real[inner.type].parse(inner_request, payload, inner, provider_id)
        except PayloadError as exc:
            raise PayloadError(source.id, request.url, exc.reason) from None

    def config_problems(self, source: Source, regions: list[str]) -> list[tuple[str, object, str]]:
        """What `requests` would refuse: sky params that do not fit, a provider not simulated."""
        try:
            params, folder = self._setup(source)
            _inner_sources(params, folder, source)
        except PayloadError as exc:
            return [("params", source.params, exc.reason)]
        return []

    @staticmethod
    def _setup(source: Source) -> tuple[SimulatedParams, Path]:
        params = parse_params(SimulatedParams, source.id, source.url, source.params)
        try:
            folder = file_url_path(source.url)
        except ValueError as exc:
            raise PayloadError(source.id, source.url, str(exc)) from None
        try:
            params.sky_params()
        except ValueError as exc:
            raise PayloadError(source.id, source.url, f"invalid params: {exc}") from None
        return params, folder


def _inner_sources(params: SimulatedParams, folder: Path, source: Source) -> list[Source]:
    layout = build_layout(params.sky_params(), folder.parent)
    provider = next((p for p in layout.providers if p.id == params.provider), None)
    if provider is None:
        raise PayloadError(
            source.id,
            source.url,
            f"params.provider: got {params.provider!r}: expected one of "
            f"{[p.id for p in layout.providers]}",
        )
    return [Source.model_validate(doc) for doc in source_docs(provider, folder)]


def _ensure_captures(params: SimulatedParams, folder: Path, source: Source) -> None:
    """Generate the provider's captures into `folder` unless the same params made them."""
    marker = orjson.dumps(params.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    if (folder / MARKER).is_file() and (folder / MARKER).read_bytes() == marker:
        return
    _inner_sources(params, folder, source)  # names a wrong provider before any work
    staging = folder.with_name(f"{folder.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    world = simulate(params.sky_params(), staging.parent)
    write_provider_captures(world, params.provider, staging)
    (staging / MARKER).write_bytes(marker)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
