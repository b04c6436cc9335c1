"""The contract every telemetry adapter implements: what to fetch, and how to parse it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

import polars as pl
from pydantic import BaseModel

from skyshard.config.providers import Source


@dataclass(frozen=True)
class Window:
    """The half-open time range [start, end) an ingestion run asks a source for (UTC, naive)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class FetchRequest:
    """One payload to fetch: `name` says which part of the source it is (a query, an endpoint)."""

    name: str
    url: str


@dataclass(frozen=True)
class QuarantinedRow:
    """A row that failed validation, kept with the reason and its raw text."""

    target_table: str
    reason: str
    raw_value: str


@dataclass
class Parsed:
    """What one payload yielded: frames keyed by raw table name, and the rows set aside.

    Frames hold exactly the table's columns from `skyshard.sources.raw_tables` except the ingestion
    metadata (`source_id`, `fetched_at`, `payload_hash`), which the writer adds.
    """

    frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    quarantine: list[QuarantinedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Problems that leave the rows usable, e.g. a capture that holds only some pages."""
    next_request: FetchRequest | None = None
    """The next page of a paged answer (NextPageLink, NextToken), fetched and parsed in turn."""


class PayloadError(ValueError):
    """The payload as a whole is unusable (not JSON, wrong schema, HTTP error, timeout).

    The ingestion of this source fails and is reported; other sources are unaffected.
    """

    def __init__(self, source_id: str, url: str, reason: str) -> None:
        self.source_id = source_id
        self.url = url
        self.reason = reason
        super().__init__(f"source {source_id!r} ({url}): {reason}")


class Adapter(Protocol):
    """A telemetry source type (`prometheus`, `statuspage`, ...).

    `type` is its name in `providers.yaml`, `tables` the raw tables it writes (the first is the
    one its feed's health check is shown on), `params_model` the schema of its `params`.
    """

    type: str
    tables: tuple[str, ...]
    params_model: type[BaseModel]

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        """The payloads to fetch for `window`, in order."""
        ...

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        """Rows for the raw tables; raises PayloadError when the payload is unusable."""
        ...


@runtime_checkable
class Fetcher(Protocol):
    """An adapter that fetches its own payloads (over SSH, say) instead of by `request.url`."""

    def fetch(self, request: FetchRequest, source: Source) -> bytes:
        """The payload of `request`; raises PayloadError when it cannot be had."""
        ...


@runtime_checkable
class ConfigChecker(Protocol):
    """An adapter whose params must agree with the rest of its provider's configuration."""

    def config_problems(self, source: Source, regions: list[str]) -> list[tuple[str, object, str]]:
        """(path under the source, value, what was expected) for each disagreement."""
        ...


def capture_format(configured: Literal["csv", "json"] | None, url: str) -> str:
    """The configured payload format, else CSV for a URL ending in `.csv` and JSON otherwise."""
    if configured:
        return configured
    return "csv" if urlsplit(url).path.lower().endswith(".csv") else "json"
