"""Shard groups: stable buckets that split the forecast into partitions."""

from __future__ import annotations

import pytest

from skyshard.forecast.groups import group_keys, series_group, series_in_group

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
    assert series_group("shard/shard-0001/cpu") == "group-7"
    assert series_group("host/h-1/cpu_free") == "group-7"
    assert series_group("price/cloud-a/eu-west") == "group-0"


def test_every_series_of_one_owner_is_in_one_group():
    assert len({series_group(s) for s in SERIES[:3]}) == 1
    assert series_group("price/cloud-a/eu-west") == series_group("capacity/cloud-a/cpu")


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
    with pytest.raises(ValueError, match="'shard-1'"):
        series_group("shard-1")
