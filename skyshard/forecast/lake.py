"""Forecasts in the shared lake (`SKYSHARD_LAKE_DIR`): each shard group's rows of the three
forecast tables are whole files `<lake>/forecast/<table>/<group>.parquet`, replaced atomically
(`skyshard.storage.lake`), so a group's partition writes from any machine, without the DuckDB
file and without merging with other groups. With a lake this is the only layout of those
tables: an unpartitioned run writes every group's files the same way, and the DuckDB file
reads them through views (`attach_forecast_lake`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import duckdb
import polars as pl

from skyshard.forecast.groups import partition_of, series_in_group
from skyshard.forecast.store import (
    TABLES,
    create_tables,
    stored_fingerprints,
    write_refit,
)
from skyshard.forecast.tables import ForecastResult
from skyshard.storage.lake import attach_lake, partition_reader, partition_writer

LAKE_TABLES = tuple(TABLES.values())


def group_of(frame: pl.DataFrame) -> pl.Series:
    """The shard group of every row (by its `series_id`)."""
    ids = frame["series_id"]
    groups = {sid: partition_of(sid) for sid in ids.unique().to_list()}
    return ids.replace_strict(groups, return_dtype=pl.String)


def lake_fingerprints(lake: Path, groups: Sequence[str]) -> dict[str, str]:
    """Series id → the input fingerprint of its last fit, from the summary files of `groups`."""
    found: dict[str, str] = {}
    for group in groups:
        with partition_reader(lake, group, [TABLES["summary"]], create_tables) as con:
            found |= stored_fingerprints(con)
    return found


def write_groups(
    lake: Path,
    result: ForecastResult,
    current: Mapping[str, str],
    refit: Collection[str],
    groups: Sequence[str],
) -> dict[str, pl.DataFrame]:
    """Store `result` (the fit of the `refit` series) as the files of `groups`: each group's
    fresh rows merged with its previous file's rows of its other `current` series (a group
    without series loses its files). Returns what was stored, the groups together."""
    stored: dict[str, list[pl.DataFrame]] = {key: [] for key in TABLES}
    for group in groups:
        mine = series_in_group(current, group)
        fitted = series_in_group(refit, group)
        part = ForecastResult(
            **{
                key: getattr(result, key).filter(pl.col("series_id").is_in(fitted))
                for key in TABLES
            }
        )
        with partition_writer(lake, group, LAKE_TABLES, create_tables) as con:
            tables = write_refit(con, part, {sid: current[sid] for sid in mine}, fitted)
        for key, frame in tables.items():
            stored[key].append(frame)
    return {key: pl.concat(frames) for key, frames in stored.items()}


def attach_forecast_lake(con: duckdb.DuckDBPyConnection, lake: Path) -> dict[str, int]:
    """Make the forecast tables of the DuckDB file `con` is open on views over the groups'
    files. Tables a run before the lake stored are moved there first, group by group, for the
    groups without a file yet (so their fingerprints carry over: nothing is refitted for the
    switch); then dropped. Returns the files each view reads."""
    return attach_lake(con, lake, LAKE_TABLES, split=group_of)
