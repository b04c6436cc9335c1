"""The one list of telemetry source types: every adapter, and what is derived from it.

An adapter declares its `type` (the name in `providers.yaml`), the raw `tables` it writes and
its `params_model`; the valid source types, each feed's primary table and the configuration
checks all come from `ADAPTERS`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from skyshard.config import paths
from skyshard.config.errors import ConfigError, ConfigProblem, yaml_path
from skyshard.config.providers import Provider, Source
from skyshard.config.sky import PROVIDERS_FILE, Sky
from skyshard.sources.aws_price_list import AwsPriceListAdapter
from skyshard.sources.aws_spot_advisor import AwsSpotAdvisorAdapter
from skyshard.sources.aws_spot_price_history import AwsSpotPriceHistoryAdapter
from skyshard.sources.azure_retail_prices import AzureRetailPricesAdapter
from skyshard.sources.base import Adapter, ConfigChecker
from skyshard.sources.cloudwatch import CloudWatchAdapter
from skyshard.sources.csv_prices import CsvPricesAdapter
from skyshard.sources.csv_usage import CsvUsageAdapter
from skyshard.sources.fetch import file_url_path
from skyshard.sources.gcp_status import GcpStatusAdapter
from skyshard.sources.prometheus import PrometheusAdapter
from skyshard.sources.rss_status import RssStatusAdapter
from skyshard.sources.simulated import SimulatedAdapter
from skyshard.sources.ssh_probe import SshProbeAdapter
from skyshard.sources.statuspage import StatuspageAdapter

DATA_DIRS_ENV = "SKYSHARD_DATA_DIRS"
"""Folders (os.pathsep-separated) besides SKYSHARD_HOME and the data folder (beside the DuckDB
file) that `file://` sources may read."""


def _by_type(adapters: Iterable[Adapter]) -> dict[str, Adapter]:
    return {adapter.type: adapter for adapter in adapters}


CAPTURE_ADAPTERS = _by_type(
    [
        PrometheusAdapter(),
        StatuspageAdapter(),
        AwsSpotPriceHistoryAdapter(),
        CsvUsageAdapter(),
        CsvPricesAdapter(),
        AzureRetailPricesAdapter(),
        CloudWatchAdapter(),
        GcpStatusAdapter(),
        AwsSpotAdvisorAdapter(),
        RssStatusAdapter(),
        AwsPriceListAdapter(),
    ]
)
"""Adapters of formats a saved file can hold (the simulator writes these)."""

ADAPTERS: dict[str, Adapter] = {
    **CAPTURE_ADAPTERS,
    **_by_type([SimulatedAdapter(CAPTURE_ADAPTERS), SshProbeAdapter()]),
}


def primary_table(source_type: str) -> str:
    """The raw table a source type mostly feeds: its feed's health check is shown there."""
    return ADAPTERS[source_type].tables[0]


def allowed_roots(sky: Sky) -> tuple[Path, ...]:
    """Folders `file://` sources may read: the sky's home, the data folder, SKYSHARD_DATA_DIRS."""
    extra = [Path(p) for p in os.environ.get(DATA_DIRS_ENV, "").split(os.pathsep) if p]
    return tuple(p.resolve() for p in (sky.home, paths.data_dir(), *extra))


def file_url_problem(url: str, roots: tuple[Path, ...]) -> str | None:
    """Why a `file://` url may not be read (not absolute, outside every root), or None."""
    if urlsplit(url).scheme != "file":
        return None
    try:
        path = file_url_path(url).resolve()
    except ValueError as exc:
        return str(exc)
    if not any(path.is_relative_to(root) for root in roots):
        shown = ", ".join(str(r) for r in roots)
        return (
            f"a file:// path inside SKYSHARD_HOME, the data folder or {DATA_DIRS_ENV} "
            f"({shown}); got {path}"
        )
    return None


def source_problems(
    provider: Provider, source: Source, path: str, roots: tuple[Path, ...], file: Path
) -> list[ConfigProblem]:
    """Everything ingest would refuse about `source` for configuration reasons."""
    adapter = ADAPTERS.get(source.type)
    if adapter is None:
        return [ConfigProblem(file, f"{path}.type", source.type, f"one of {sorted(ADAPTERS)}")]
    problems = []
    url_problem = file_url_problem(source.url, roots)
    if url_problem:
        problems.append(ConfigProblem(file, f"{path}.url", source.url, url_problem))
    try:
        adapter.params_model.model_validate(source.params)
    except ValidationError as exc:
        return problems + [
            ConfigProblem(
                file,
                f"{path}.params.{yaml_path(tuple(e['loc']))}",
                e.get("input"),
                e["msg"].removeprefix("Value error, "),
            )
            for e in exc.errors()
        ]
    if isinstance(adapter, ConfigChecker):
        problems += [
            ConfigProblem(file, f"{path}.{where}", value, expected)
            for where, value, expected in adapter.config_problems(source, provider.regions)
        ]
    return problems


def check_sources(sky: Sky) -> None:
    """Raise ConfigError naming file, field and value for every source ingest would refuse."""
    roots = allowed_roots(sky)
    file = sky.home / PROVIDERS_FILE
    problems = [
        problem
        for i, provider in enumerate(sky.providers)
        for j, source in enumerate(provider.sources)
        for problem in source_problems(
            provider, source, f"providers[{i}].sources[{j}]", roots, file
        )
    ]
    if problems:
        raise ConfigError(problems)
