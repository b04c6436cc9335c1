"""Shard groups: stable buckets that split the forecast into partitions."""

from __future__ import annotations

import zlib

import pytest

from skyshard.forecast.groups import group_keys, partition_of, series_in_group

SERIES = [
    "shard/shard-0001/cpu",
    "shard/shard-0001/mem_gb",
    "shard/shard-0001/net_mbps",
    "host/h-1/cpu_free",
    "price/cloud-a/eu-west",
    "capacity/cloud-a/cpu",
    *(f"shard/shard-{i:04d}/cpu" for i in range(2, 200)),
]


def test_a_series_falls_into_its_owners_crc32_bucket():
    # Known answers: zlib.crc32(owner) % 8, the same in every process and on every machine.
    assert partition_of("shard/shard-0001/cpu") == "group-7"
    assert partition_of("host/h-1/cpu_free") == "group-7"
    assert partition_of("price/cloud-a/eu-west") == "group-0"


def test_an_id_outside_the_format_is_its_own_owner():
    # forecasting accepts any id (e.g. a user's own "vm:1019:cpu"): no error, a stable bucket
    assert partition_of("vm:1019:cpu") == f"group-{zlib.crc32(b'vm:1019:cpu') % 8}"


def test_every_series_of_one_owner_is_in_one_group():
    assert len({partition_of(s) for s in SERIES[:3]}) == 1
    assert partition_of("price/cloud-a/eu-west") == partition_of("capacity/cloud-a/cpu")


def test_the_groups_split_the_series_without_overlap():
    parts = [series_in_group(SERIES, key) for key in group_keys()]
    assert sorted(s for part in parts for s in part) == sorted(SERIES)
    assert all(parts), "198 shards leave no group empty"
    assert series_in_group(SERIES, "group-0", count=1) == sorted(SERIES)


def test_bad_groups_are_named():
    with pytest.raises(ValueError, match="'group-8'"):
        series_in_group(SERIES, "group-8")
    with pytest.raises(ValueError, match="at least 1, got 0"):
        group_keys(0)
