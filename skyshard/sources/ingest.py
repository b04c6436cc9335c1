"""Ingest every configured telemetry source into schema `raw`, one source failing alone.

Collection (fetch + parse) happens outside the DuckDB write lock; the write of one source
is one short transaction that replaces what the same source said about the same window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from skyshard import db
from skyshard.config.providers import Provider, Source
from skyshard.config.sky import Sky
from skyshard.sources.base import (
    Adapter,
    Fetcher,
    FetchRequest,
    PayloadError,
    QuarantinedRow,
    Window,
)
from skyshard.sources.fetch import fetch_for_source
from skyshard.sources.plausibility import Bounds, set_aside_implausible
from skyshard.sources.raw_tables import (
    BY_NAME,
    INGEST_COLUMNS,
    QUARANTINE,
    RawTable,
    create_table_sql,
    ensure_raw_schema,
)
from skyshard.sources.registry import ADAPTERS, allowed_roots, file_url_problem
from skyshard.storage.lake import attach_lake, lake_dir, partition_writer, read_lake

INGEST_COLUMN_NAMES = frozenset(name for name, _ in INGEST_COLUMNS)
RAW_TABLES = tuple(f"raw.{name}" for name in BY_NAME)
"""Every table a feed writes: with the lake, one Parquet file per table and feed."""
MAX_PAGES = 1000
"""Pages followed per request of a paged answer before the rest is reported as not ingested."""


@dataclass
class CollectedSource:
    """Everything one source yielded in one run, ready to write."""

    source: Source
    provider_id: str
    fetched_at: datetime
    payload_hash: str = ""
    frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    quarantine: list[QuarantinedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def row_counts(self) -> dict[str, int]:
        return {name: frame.height for name, frame in self.frames.items()}


def collect_source(
    source: Source,
    provider_id: str,
    window: Window,
    *,
    roots: tuple[Path, ...] = (),
    adapters: dict[str, Adapter] = ADAPTERS,
) -> CollectedSource:
    """Fetch and parse one source; a whole-payload failure is recorded, never raised.

    `file://` payloads are read only inside `roots` (see `registry.allowed_roots`)."""
    collected = CollectedSource(source, provider_id, fetched_at=_now())
    adapter = adapters.get(source.type)
    if adapter is None:
        collected.error = f"source type {source.type!r} has no ingestion adapter"
        return collected
    digest = hashlib.sha256()
    parts: dict[str, list[pl.DataFrame]] = {}
    try:
        for first in adapter.requests(source, window):
            request: FetchRequest | None = first
            for _ in range(MAX_PAGES):
                if request is None:
                    break
                if isinstance(adapter, Fetcher):
                    payload = adapter.fetch(request, source)
                elif problem := file_url_problem(request.url, roots):
                    raise PayloadError(source.id, request.url, f"expected {problem}")
                else:
                    payload = fetch_for_source(source, request)
                digest.update(hashlib.sha256(payload).digest())
                parsed = adapter.parse(request, payload, source, provider_id)
                for name, frame in parsed.frames.items():
                    parts.setdefault(name, []).append(frame)
                collected.quarantine.extend(parsed.quarantine)
                collected.warnings.extend(parsed.warnings)
                request = parsed.next_request
            if request is not None:
                collected.warnings.append(
                    f"{first.name}: stopped after {MAX_PAGES} pages; the rest is not ingested"
                )
    except PayloadError as exc:
        collected.error = str(exc)
        collected.frames = {}
        return collected
    collected.payload_hash = digest.hexdigest()
    collected.frames = {
        name: pl.concat(frames, how="vertical_relaxed") for name, frames in parts.items()
    }
    return collected


@dataclass(frozen=True)
class KnownIds:
    """The ids the configured sky knows; telemetry about anything else is quarantined."""

    shards: frozenset[str]
    hosts: frozenset[str]
    providers: frozenset[str]

    @classmethod
    def of(cls, sky: Sky) -> KnownIds:
        return cls(
            shards=frozenset(s.id for s in sky.shards),
            hosts=frozenset(sky.hosts),
            providers=frozenset(p.id for p in sky.providers),
        )

    def columns(self) -> dict[str, frozenset[str]]:
        return {
            "shard_id": self.shards,
            "host_id": self.hosts,
            "src_provider_id": self.providers,
            "dst_provider_id": self.providers,
        }


def set_aside_unknown(collected: CollectedSource, known: KnownIds) -> None:
    """Move rows about shards, hosts or providers the sky does not know into the quarantine."""
    for name, frame in list(collected.frames.items()):
        for column, ids in known.columns().items():
            if column not in frame.columns:
                continue
            unknown = ~frame[column].is_in(list(ids))
            if not unknown.any():
                continue
            for value, count in frame.filter(unknown)[column].value_counts().iter_rows():
                collected.quarantine.append(
                    QuarantinedRow(
                        target_table=name,
                        reason=f"{column} {value!r} is not in the configured sky ({count} rows)",
                        raw_value=str(value),
                    )
                )
            frame = frame.filter(~unknown)
        collected.frames[name] = frame


def write_collected(con: duckdb.DuckDBPyConnection, collected: CollectedSource) -> None:
    """Replace this source's rows for the windows (or keys) the new rows cover."""
    if not collected.ok:
        return
    with db.transaction(con):
        for name, frame in collected.frames.items():
            _replace_rows(con, BY_NAME[name], frame, collected)
        _replace_rows(con, QUARANTINE, _quarantine_frame(collected), collected)


def _quarantine_frame(collected: CollectedSource) -> pl.DataFrame:
    rows = {(q.target_table, q.reason, q.raw_value) for q in collected.quarantine}
    return pl.DataFrame(
        sorted(rows),
        schema={"target_table": pl.String, "reason": pl.String, "raw_value": pl.String},
        orient="row",
    ).with_columns(pl.lit(collected.provider_id).alias("provider_id"))


def _replace_rows(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    frame: pl.DataFrame,
    collected: CollectedSource,
) -> None:
    """Delete what this source said before about the incoming rows, then insert them.

    Time-series tables lose only the points the capture holds (same key and timestamp), so a
    sparse re-capture keeps the finer data between its points; with the source's
    `replace: window`, everything the source said within the capture's time span goes.
    Tables without a time column are replaced by key.

    The ingestion columns are bound as query parameters rather than repeated in the frame:
    on millions of samples that saves building millions of identical strings."""
    if frame.is_empty():
        return
    qualified = f"raw.{table.name}"
    data_columns = [c for c in table.column_names if c not in INGEST_COLUMN_NAMES]
    con.register("_incoming", frame.select(data_columns).to_arrow())
    try:
        if table.window_column and collected.source.replace == "window":
            column = f'"{table.window_column}"'
            con.execute(
                f"DELETE FROM {qualified} WHERE source_id = ? AND {column} BETWEEN "
                f"(SELECT min({column}) FROM _incoming) AND (SELECT max({column}) FROM _incoming)",
                [collected.source.id],
            )
        else:
            matches = " AND ".join(f'{qualified}."{k}" = _incoming."{k}"' for k in table.key)
            con.execute(
                f"DELETE FROM {qualified} USING _incoming WHERE {qualified}.source_id = ? "
                f"AND {matches}",
                [collected.source.id],
            )
        con.execute(
            f"INSERT INTO {qualified} BY NAME SELECT *, ? AS source_id, "
            "CAST(? AS TIMESTAMP) AS fetched_at, ? AS payload_hash FROM _incoming",
            [collected.source.id, collected.fetched_at, collected.payload_hash],
        )
    finally:
        con.unregister("_incoming")


def sources_of(providers: Iterable[Provider]) -> list[tuple[Provider, Source]]:
    return [(p, s) for p in providers for s in p.sources]


@dataclass(frozen=True)
class FeedOutcome:
    """What one feed's ingestion did: the rows it wrote or why it failed."""

    source: Source
    provider_id: str
    rows: int
    quarantined: int
    error: str | None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


def ingest_all(
    sky: Sky,
    window: Window,
    database: Path | str,
    on_progress: Callable[[int, int, FeedOutcome], None] | None = None,
    feeds: Collection[str] | None = None,
) -> list[FeedOutcome]:
    """Ingest every feed of `sky` (or those whose source id is in `feeds`) in turn, one
    failing alone.

    Each feed is fetched and parsed with no database connection open, then written in one
    short transaction and dropped, so memory holds one feed at a time: into the DuckDB file
    `database`, or with `SKYSHARD_LAKE_DIR` set into the feed's own Parquet files in the shared
    lake (`skyshard.storage.lake`; the DuckDB file is not opened, so any machine that mounts
    the lake can ingest)."""
    pairs = sources_of(sky.providers)
    if feeds is not None:
        unknown = sorted(set(feeds) - {source.id for _, source in pairs})
        if unknown:
            raise ValueError(f"feeds {unknown} are not sources in {sky.home}/providers.yaml")
        pairs = [(provider, source) for provider, source in pairs if source.id in feeds]
    known = KnownIds.of(sky)
    roots = allowed_roots(sky)
    bounds = Bounds.of(sky, _now())
    lake = lake_dir()
    if lake is None:
        with db.connect(database) as con:
            ensure_raw_schema(con)
    outcomes = []
    for done, (provider, source) in enumerate(pairs, start=1):
        collected = collect_source(source, provider.id, window, roots=roots)
        set_aside_unknown(collected, known)
        collected.frames, implausible = set_aside_implausible(collected.frames, bounds)
        collected.quarantine.extend(implausible)
        if collected.ok and lake is not None:
            with partition_writer(lake, source.id, RAW_TABLES, ensure_raw_schema) as con:
                write_collected(con, collected)
        elif collected.ok:
            with db.connect(database) as con:
                write_collected(con, collected)
        outcome = FeedOutcome(
            source=source,
            provider_id=provider.id,
            rows=sum(collected.row_counts().values()),
            quarantined=len(collected.quarantine),
            error=collected.error,
            warnings=tuple(collected.warnings),
        )
        outcomes.append(outcome)
        if on_progress:
            on_progress(done, len(pairs), outcome)
    return outcomes


def attach_raw_lake(con: duckdb.DuckDBPyConnection, lake: Path) -> dict[str, int]:
    """Make the raw tables of the DuckDB file `con` is open on views over the feeds' files in
    `lake`, before dbt or planning reads them; the files per table. Tables no feed has written
    yet are created empty, as dbt's sources expect them."""
    _create_raw_tables(con)
    return attach_lake(con, lake, RAW_TABLES)


def _create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for table in BY_NAME.values():  # IF NOT EXISTS: a table or a view already there stays
        con.execute(create_table_sql("raw", table))


@contextmanager
def read_raw(database: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only look at the raw tables: the DuckDB file's, or with `SKYSHARD_LAKE_DIR` set
    the lake's (an in-memory database; the DuckDB file is not opened)."""
    lake = lake_dir()
    if lake is None:
        with db.connect(database, read_only=True) as con:
            yield con
        return
    with read_lake(lake, RAW_TABLES, _create_raw_tables) as con:
        yield con


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
