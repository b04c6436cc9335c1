"""Shard groups: a stable hash bucket for every series, so forecasting splits into partitions
that any worker can compute on its own.

A series belongs to the group of its owner (`shard/<shard id>/…` by shard id, host and
provider series by their id), so all series of one shard are fitted together. The bucket is a
CRC-32 of the owner: the same on every machine and Python process (unlike `hash()`)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from skyshard.forecast.series_id import SeriesId

SHARD_GROUPS = 8
"""How many groups the forecasts are split into: partitions of the forecast asset."""
PREFIX = "group-"


def group_keys(count: int = SHARD_GROUPS) -> list[str]:
    """The partition keys `group-0` … `group-<count - 1>`."""
    if count < 1:
        raise ValueError(f"shard group count must be at least 1, got {count!r}")
    return [f"{PREFIX}{i}" for i in range(count)]


def partition_of(series_id: str, count: int = SHARD_GROUPS) -> str:
    """The partition key of one series id (an id outside the `SeriesId` format, which
    forecasting accepts, is its own owner)."""
    try:
        owner = SeriesId.parse(series_id).owner
    except ValueError:
        owner = series_id
    return f"{PREFIX}{zlib.crc32(owner.encode()) % count}"


def series_in_group(series_ids: Iterable[str], group: str, count: int = SHARD_GROUPS) -> list[str]:
    """The ids (sorted) of `series_ids` that fall into `group`."""
    if group not in group_keys(count):
        raise ValueError(f"shard group {group!r} is not one of group-0 … group-{count - 1}")
    return sorted(sid for sid in series_ids if partition_of(sid, count) == group)
