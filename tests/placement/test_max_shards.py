from __future__ import annotations

import random

import pytest

from skyshard.placement import Budget, PlacementInput, Status, check_assignment, greedy_placement
from skyshard.placement.constraints.max_shards import MaxShardsPerHost
from tests.placement.test_solve import brute_force, costs, host, shard, solve


def cheap_first(shard_ids: list[str], host_ids: list[str]):
    return costs({(s, h): 1.0 + i for s in shard_ids for i, h in enumerate(host_ids)})


def test_a_limited_host_takes_no_more_than_its_limit():
    inp = PlacementInput(
        shards=[shard(s) for s in "abc"],
        hosts=[host("cheap"), host("dear")],
        candidates=cheap_first(list("abc"), ["cheap", "dear"]),
        rules=[MaxShardsPerHost(2, hosts=("cheap",))],
    )
    result = solve(inp)
    assert result.status == Status.OPTIMAL
    assert sorted(result.assignment.values()) == ["cheap", "cheap", "dear"]


def test_the_lowest_limit_of_several_rules_holds():
    inp = PlacementInput(
        shards=[shard(s) for s in "abc"],
        hosts=[host("cheap"), host("dear")],
        candidates=cheap_first(list("abc"), ["cheap", "dear"]),
        rules=[MaxShardsPerHost(2), MaxShardsPerHost(1, hosts=("cheap",))],
    )
    assert sorted(solve(inp).assignment.values()) == ["cheap", "dear", "dear"]


def test_a_host_over_its_limit_now_is_relieved_within_the_budget():
    inp = PlacementInput(
        shards=[shard(s, current="h1") for s in "abc"],
        hosts=[host("h1"), host("h2")],
        candidates=cheap_first(list("abc"), ["h1", "h2"]),
        budget=Budget(max_moves=1),
        rules=[MaxShardsPerHost(2)],
    )
    assert check_assignment(inp, dict.fromkeys("abc", "h1"))[0].family == "max_shards"
    result = solve(inp)
    (move,) = result.moves
    assert (move.from_host, move.to_host, move.reason) == ("h1", "h2", "overloaded")
    assert result.status == Status.OPTIMAL


def test_what_cannot_be_fixed_is_reported_with_the_reason():
    inp = PlacementInput(
        shards=[shard(s, current="h1") for s in "abc"] + [shard("new")],
        hosts=[host("h1"), host("h2")],
        candidates=cheap_first(["a", "b", "c", "new"], ["h1", "h2"]),
        rules=[MaxShardsPerHost(1)],
    )
    result = solve(inp)
    assert result.status == Status.PARTIAL
    assert "max_shards: 4 shards but the hosts' max_shards add up to 2" in result.explanation
    assert [line.split(":")[0] for line in result.unfixed] == ["max_shards"]


def test_a_shard_whose_every_host_has_limit_zero_is_unplaced_with_why():
    inp = PlacementInput(
        shards=[shard("a")],
        hosts=[host("h1"), host("h2")],
        candidates=cheap_first(["a"], ["h1", "h2"]),
        rules=[MaxShardsPerHost(0)],
    )
    result = solve(inp)
    assert result.unplaced == {"a": "every allowed host has max_shards 0 (h1, h2)"}


def test_greedy_keeps_the_limit():
    inp = PlacementInput(
        shards=[shard(s) for s in "abcd"],
        hosts=[host("cheap"), host("dear")],
        candidates=cheap_first(list("abcd"), ["cheap", "dear"]),
        rules=[MaxShardsPerHost(2)],
    )
    result = greedy_placement(inp)
    assert sorted(result.assignment.values()) == ["cheap", "cheap", "dear", "dear"]
    assert result.unfixed == ()


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (MaxShardsPerHost(-1), "rules[0]: limit = -1 must be a whole number >= 0"),
        (MaxShardsPerHost(1.5), "rules[0]: limit = 1.5 must be a whole number >= 0"),
        (MaxShardsPerHost(1, hosts=("h9",)), "rules[0]: hosts: unknown host 'h9'"),
        ("max 2", "rules[0] = 'max 2': not a rule of any placement constraint family"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule_and_value(rule, message):
    inp = PlacementInput(
        shards=[shard("a")],
        hosts=[host("h1")],
        candidates=cheap_first(["a"], ["h1"]),
        rules=[rule],
    )
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        solve(inp)


@pytest.mark.parametrize("seed", range(12))
def test_random_instances_match_brute_force(seed):
    rng = random.Random(seed)
    host_ids = [f"h{i}" for i in range(3)]
    shards = [shard(f"s{i}", current=rng.choice([None, "h0"])) for i in range(4)]
    inp = PlacementInput(
        shards=shards,
        hosts=[host(h, cpu=rng.choice([2, 3, 4])) for h in host_ids],
        candidates=costs(
            {(s.shard_id, h): round(rng.uniform(1, 10), 2) for s in shards for h in host_ids}
        ),
        rules=[MaxShardsPerHost(rng.choice([0, 1, 2]), hosts=(h,)) for h in host_ids[:2]],
    )
    expected = brute_force(inp)
    result = solve(inp)
    if expected is None:
        assert result.status == Status.PARTIAL
    else:
        assert result.objective == pytest.approx(expected)
