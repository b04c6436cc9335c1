from __future__ import annotations

import random

import numpy as np
import pytest

from skyshard.placement import Budget, HostSupply, PlacementInput, ShardDemand, Status
from skyshard.placement.candidates import eligible_candidates
from skyshard.placement.devices import devices_needed, host_usage
from skyshard.placement.instance import NO_INDEX, build_instance
from tests.placement.packing import device_packing_failures, packs
from tests.placement.test_solve import brute_force, costs, solve


def gpu_host(host_id: str, devices: int | None, gpu: float | None = None) -> HostSupply:
    return HostSupply(
        host_id,
        "p1",
        "r1",
        cpu=64,
        mem_gb=512,
        gpu=float(devices if gpu is None else gpu),
        gpu_devices=devices,
        gpu_model="a100" if devices is not None else None,
        gpu_memory_gb=80.0 if devices is not None else None,
    )


def gpu_shard(shard_id: str, gpu: float, current: str | None = None) -> ShardDemand:
    return ShardDemand(shard_id, current, cpu=1, mem_gb=1, gpu=gpu)


def cheap_first(shards: list[ShardDemand], hosts: list[HostSupply]):
    return costs({(s.shard_id, h.host_id): 1.0 + i for s in shards for i, h in enumerate(hosts)})


def test_checker_itself_rejects_what_does_not_pack():
    assert not packs(2, [0.6, 0.6, 0.6])
    assert packs(2, [0.5, 0.5, 1.0])
    assert not packs(8, [9.0])
    assert packs(3, [0.7, 0.3, 0.6, 0.4, 0.5, 0.5])


def test_three_sixtenths_do_not_share_two_devices():
    shards = [gpu_shard(s, 0.6) for s in "abc"]
    hosts = [gpu_host("cheap", 2), gpu_host("dear", 2)]
    inp = PlacementInput(shards, hosts, cheap_first(shards, hosts))
    result = solve(inp)
    assert result.status == Status.OPTIMAL
    assert sorted(result.assignment.values()) == ["cheap", "cheap", "dear"]


def test_without_declared_devices_gpu_stays_a_plain_amount():
    shards = [gpu_shard(s, 0.6) for s in "abc"]
    hosts = [gpu_host("cheap", None, gpu=2), gpu_host("dear", None, gpu=2)]
    result = solve(PlacementInput(shards, hosts, cheap_first(shards, hosts)))
    assert list(result.assignment.values()) == ["cheap"] * 3


def test_shares_and_whole_devices_pack_together():
    shards = [gpu_shard("half1", 0.5), gpu_shard("half2", 0.5), gpu_shard("one", 1.0)]
    hosts = [gpu_host("cheap", 2), gpu_host("dear", 2)]
    result = solve(PlacementInput(shards, hosts, cheap_first(shards, hosts)))
    assert list(result.assignment.values()) == ["cheap"] * 3


def test_multi_gpu_shard_too_big_for_every_host_is_unplaced_with_a_reason():
    shards = [gpu_shard("huge", 9), gpu_shard("fine", 4)]
    hosts = [gpu_host("big", 8), gpu_host("small", 4)]
    result = solve(PlacementInput(shards, hosts, cheap_first(shards, hosts)))
    assert result.assignment == {"fine": "big"}
    assert "needs 9 whole GPU devices; best host big has 8" in result.unplaced["huge"]


def test_overpacked_host_is_relieved_within_the_budget():
    shards = [gpu_shard(s, 0.6, current="h1") for s in "abc"]
    hosts = [gpu_host("h1", 2), gpu_host("h2", 2)]
    inp = PlacementInput(shards, hosts, cheap_first(shards, hosts), budget=Budget(max_moves=1))
    assert "h1" in device_packing_failures(inp, {s.shard_id: "h1" for s in shards})
    result = solve(inp)
    (move,) = result.moves
    assert (move.from_host, move.to_host, move.reason) == ("h1", "h2", "overloaded")


@pytest.mark.parametrize("seed", range(12))
def test_random_gpu_instances_match_brute_force(seed):
    rng = random.Random(seed)
    hosts = [gpu_host(f"h{i}", rng.choice([1, 2, 4])) for i in range(3)]
    shards = [
        gpu_shard(f"s{i}", rng.choice([0.25, 0.3, 0.5, 0.6, 1, 2]), rng.choice([None, "h0"]))
        for i in range(4)
    ]
    table = costs(
        {(s.shard_id, h.host_id): round(rng.uniform(1, 10), 2) for s in shards for h in hosts}
    )
    inp = PlacementInput(shards, hosts, table)
    expected = brute_force(inp)
    result = solve(inp)
    if expected is None:
        assert result.status == Status.PARTIAL
    else:
        assert result.objective == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(5))
def test_the_heuristics_device_count_matches_a_recount_after_adds_and_removals(seed):
    """The tracker counts devices incrementally; a recount of the same shards must agree."""
    rng = random.Random(seed)
    hosts = [gpu_host(f"h{i}", rng.choice([2, 4, 8])) for i in range(3)]
    shards = [
        gpu_shard(f"s{i}", rng.choice([0.2, 0.25, 0.3, 0.5, 0.6, 1, 2, 0])) for i in range(30)
    ]
    inst = build_instance(PlacementInput(shards, hosts, cheap_first(shards, hosts)))
    cands = eligible_candidates(inst, capacity=False)
    (devices,) = [f for f in inst.constraints if f.name == "devices"]
    tracker = devices.tracker(inst, cands)
    host_of = np.full(inst.n_shards, NO_INDEX)
    for _ in range(300):
        shard = rng.randrange(inst.n_shards)
        if host_of[shard] == NO_INDEX:
            host_of[shard] = rng.randrange(inst.n_hosts)
            tracker.update(shard, 0, int(host_of[shard]), +1)
        else:
            tracker.update(shard, 0, int(host_of[shard]), -1)
            host_of[shard] = NO_INDEX
        taken, counts = host_usage(inst.n_hosts, host_of, inst.gpu_whole, inst.gpu_slots)
        assert tracker.used.tolist() == devices_needed(taken, counts).tolist()
