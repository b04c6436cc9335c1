from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from skyshard.placement import (
    Budget,
    CandidateCost,
    CandidateTable,
    Dependency,
    HostSupply,
    PlacementInput,
    ShardDemand,
    SolveOptions,
    Status,
    check_assignment,
    greedy_placement,
    solve_placement,
)
from skyshard.placement.solve import _affordable, _Timer
from tests.placement.packing import assert_plan_sound
from tests.support.synthetic import random_instance

EXACT = SolveOptions(time_limit_s=30, mip_rel_gap=0.0, top_k=None)
LIMIT_S = 6.0  # the limit under test (not a speed target): the MIP alone would run longer


def solve(inp: PlacementInput, options: SolveOptions = EXACT):
    """Every solver test goes through the independent device-packing and violation checks."""
    result = solve_placement(inp, options)
    assert_plan_sound(inp, result)
    return result


def host(host_id, provider="p1", cpu=8.0, mem=32.0, gpu=0.0):
    return HostSupply(host_id, provider, "r1", cpu=cpu, mem_gb=mem, gpu=gpu, net_mbps=1000)


def shard(shard_id, current=None, cpu=1.0, mem=1.0, **kw):
    return ShardDemand(shard_id, current, cpu=cpu, mem_gb=mem, **kw)


def costs(table: dict[tuple[str, str], float], blocked: dict[tuple[str, str], str] | None = None):
    blocked = blocked or {}
    return CandidateTable.from_costs(
        CandidateCost(
            s, h, {"run_cost": c}, allowed=(s, h) not in blocked, blocked_by=blocked.get((s, h))
        )
        for (s, h), c in table.items()
    )


def brute_force(inp: PlacementInput) -> float | None:
    shard_ids = [s.shard_id for s in inp.shards]
    host_ids = [h.host_id for h in inp.hosts]
    cost = {
        (s, h): sum(inp.candidates.terms[t][i] for t in inp.candidates.terms)
        for i, (s, h) in enumerate(
            zip(inp.candidates.shard_ids, inp.candidates.host_ids, strict=True)
        )
    }
    best = None
    for hosts in itertools.product(host_ids, repeat=len(shard_ids)):
        assignment = dict(zip(shard_ids, hosts, strict=True))
        if check_assignment(inp, assignment):
            continue
        total = sum(cost[s, h] for s, h in assignment.items())
        best = total if best is None else min(best, total)
    return best


def small_random(seed: int) -> PlacementInput:
    rng = random.Random(seed)
    hosts = [
        host(f"h{i}", provider=f"p{i % 2}", cpu=rng.choice([2, 3, 4]), mem=8) for i in range(3)
    ]
    shards = [
        shard(
            f"s{i}",
            current=rng.choice([None, "h0", "h1", "h2"]),
            cpu=rng.choice([1, 1.5, 2]),
            anti_affinity_group=rng.choice([None, "g"]),
            affinity_group=rng.choice([None, None, "a"]),
            cycles_since_move=rng.choice([None, 0, 5]),
        )
        for i in range(4)
    ]
    table, blocked = {}, {}
    for s in shards:
        for h in hosts:
            table[s.shard_id, h.host_id] = round(rng.uniform(1, 10), 2)
            if rng.random() < 0.15:
                blocked[s.shard_id, h.host_id] = "policy"
    return PlacementInput(
        shards=shards,
        hosts=hosts,
        candidates=costs(table, blocked),
        dependencies=[Dependency("s0", "s1", rng.choice([1.0, 10.0]))],
        latency_ms={("p0", "p0"): 0.5, ("p1", "p1"): 0.5, ("p0", "p1"): 5.0},
        budget=Budget(
            max_moves=rng.choice([None, 1, 2]),
            min_saving_per_move=rng.choice([0.0, 2.0]),
            min_cycles_between_moves=2,
        ),
    )


@pytest.mark.parametrize("seed", range(40))
def test_optimal_cost_equals_brute_force(seed):
    inp = small_random(seed)
    expected = brute_force(inp)
    result = solve(inp)
    if expected is None:
        assert result.status == Status.PARTIAL
        assert result.unfixed
    else:
        assert result.status == Status.OPTIMAL
        assert result.objective == pytest.approx(expected)
        assert check_assignment(inp, result.assignment) == []


@pytest.mark.parametrize("seed", range(15))
def test_pruned_solve_keeps_an_honest_bound(seed):
    inp = small_random(seed)
    expected = brute_force(inp)
    result = solve(inp, SolveOptions(time_limit_s=30, mip_rel_gap=0.0, top_k=1))
    if expected is None:
        assert result.status == Status.PARTIAL
        return
    assert result.objective >= expected - 1e-6
    assert result.best_bound <= expected + 1e-6
    assert result.lp_bound <= expected + 1e-6


def test_capacity_forces_the_second_cheapest_host():
    inp = PlacementInput(
        shards=[shard("a", cpu=3), shard("b", cpu=3)],
        hosts=[host("cheap", cpu=4), host("dear", cpu=4)],
        candidates=costs(
            {("a", "cheap"): 1, ("a", "dear"): 5, ("b", "cheap"): 1, ("b", "dear"): 2}
        ),
    )
    result = solve(inp)
    assert result.assignment == {"a": "cheap", "b": "dear"}
    assert result.objective == pytest.approx(3)


def test_blocked_candidate_is_never_chosen_and_move_says_why():
    inp = PlacementInput(
        shards=[shard("a", current="h1")],
        hosts=[host("h1"), host("h2")],
        candidates=costs({("a", "h1"): 1, ("a", "h2"): 9}, blocked={("a", "h1"): "data_class"}),
    )
    result = solve(inp)
    assert result.assignment == {"a": "h2"}
    (move,) = result.moves
    assert (move.from_host, move.to_host, move.reason) == ("h1", "h2", "blocked: data_class")
    assert move.saving == pytest.approx(-8)
    assert move.terms == {"run_cost": pytest.approx(-8)}


def test_latency_limit_keeps_dependents_close():
    inp = PlacementInput(
        shards=[shard("a"), shard("b")],
        hosts=[host("x", provider="p1"), host("y", provider="p2")],
        candidates=costs({("a", "x"): 1, ("a", "y"): 2, ("b", "x"): 3, ("b", "y"): 1}),
        dependencies=[Dependency("a", "b", 5)],
        latency_ms={("p1", "p2"): 12},
    )
    result = solve(inp)
    assert result.assignment["a"] == result.assignment["b"]
    assert result.objective == pytest.approx(3)


def test_anti_affinity_spreads_a_group():
    inp = PlacementInput(
        shards=[shard(s, anti_affinity_group="replicas") for s in "abc"],
        hosts=[host("h1"), host("h2"), host("h3")],
        candidates=costs(
            {(s, h): 1 if h == "h1" else 2 for s in "abc" for h in ("h1", "h2", "h3")}
        ),
    )
    result = solve(inp)
    assert sorted(result.assignment.values()) == ["h1", "h2", "h3"]


def test_affinity_keeps_a_group_on_one_provider():
    inp = PlacementInput(
        shards=[shard("a", affinity_group="g"), shard("b", affinity_group="g")],
        hosts=[host("x", provider="p1"), host("y", provider="p2"), host("z", provider="p2")],
        candidates=costs(
            {
                ("a", "x"): 1,
                ("a", "y"): 3,
                ("a", "z"): 3,
                ("b", "x"): 5,
                ("b", "y"): 1,
                ("b", "z"): 1,
            }
        ),
    )
    result = solve(inp)
    assert {result.assignment["a"], result.assignment["b"]} <= {"y", "z"}
    assert result.objective == pytest.approx(4)


def test_max_moves_limits_the_plan():
    shards = [shard(s, current="old") for s in "abc"]
    table = {(s, h): (9 if h == "old" else 1) for s in "abc" for h in ("old", "new")}
    inp = PlacementInput(
        shards=shards,
        hosts=[host("old"), host("new")],
        candidates=costs(table),
        budget=Budget(max_moves=2),
    )
    result = solve(inp)
    assert len(result.moves) == 2
    assert all(m.reason == "saving" and m.saving == pytest.approx(8) for m in result.moves)


def test_hysteresis_blocks_small_savings_and_recent_movers():
    inp = PlacementInput(
        shards=[
            shard("small", current="h1"),
            shard("recent", current="h1", cycles_since_move=1),
            shard("big", current="h1"),
        ],
        hosts=[host("h1"), host("h2")],
        candidates=costs(
            {
                ("small", "h1"): 10,
                ("small", "h2"): 9.5,
                ("recent", "h1"): 10,
                ("recent", "h2"): 1,
                ("big", "h1"): 10,
                ("big", "h2"): 1,
            }
        ),
        budget=Budget(min_saving_per_move=1.0, min_cycles_between_moves=3),
    )
    result = solve(inp)
    assert result.assignment == {"small": "h1", "recent": "h1", "big": "h2"}


def test_no_flapping_back_after_a_move():
    def plan(current: str, cycles: int | None) -> dict[str, str]:
        migration = {"h1": 0.0 if current == "h1" else 2.0, "h2": 0.0 if current == "h2" else 2.0}
        table = CandidateTable.from_costs(
            CandidateCost("a", h, {"run_cost": run, "migration_cost": migration[h]})
            for h, run in (("h1", 10.0), ("h2", 7.0))
        )
        inp = PlacementInput(
            shards=[shard("a", current=current, cycles_since_move=cycles)],
            hosts=[host("h1"), host("h2")],
            candidates=table,
            budget=Budget(min_saving_per_move=0.5, min_cycles_between_moves=2),
        )
        return solve(inp).assignment

    assert plan("h1", None) == {"a": "h2"}
    assert plan("h2", 1) == {"a": "h2"}
    assert plan("h2", 10) == {"a": "h2"}


def test_overloaded_host_frees_its_shards_from_hysteresis():
    inp = PlacementInput(
        shards=[
            shard("a", current="h1", cpu=5, cycles_since_move=0),
            shard("b", current="h1", cpu=5, cycles_since_move=0),
        ],
        hosts=[host("h1", cpu=8), host("h2", cpu=8)],
        candidates=costs({("a", "h1"): 1, ("a", "h2"): 1.2, ("b", "h1"): 1, ("b", "h2"): 1.1}),
        budget=Budget(min_saving_per_move=5, min_cycles_between_moves=3),
    )
    result = solve(inp)
    assert result.assignment == {"a": "h1", "b": "h2"}
    assert [m.reason for m in result.moves] == ["overloaded"]


@pytest.mark.parametrize(
    ("relief", "expected"),
    [
        (None, {"a": "h1", "b": "h2"}),  # no relief value: relief is worth any price
        (20.0, {"a": "h1", "b": "h2"}),  # b's move costs 10 more than staying, relief 20 > 10 + 5
        (12.0, {"a": "h1", "b": "h1"}),  # 12 < 10 + 5 (the margin): the overload is cheaper
    ],
)
def test_relief_moves_must_pay_for_themselves(relief, expected):
    inp = PlacementInput(
        shards=[
            shard("a", current="h1", cpu=5, relief=relief),
            shard("b", current="h1", cpu=5, relief=relief),
        ],
        hosts=[host("h1", cpu=8), host("h2", cpu=8)],
        candidates=costs({("a", "h1"): 1, ("a", "h2"): 12, ("b", "h1"): 1, ("b", "h2"): 11}),
        budget=Budget(min_saving_per_move=5),
    )
    result = solve(inp)
    assert result.assignment == expected
    if expected["b"] == "h1":
        assert result.status == Status.PARTIAL and result.unfixed[0].startswith("capacity: host h1")


def test_negative_relief_is_named():
    inp = PlacementInput(
        shards=[shard("a", current="h1", relief=-1.0)],
        hosts=[host("h1")],
        candidates=costs({("a", "h1"): 1}),
    )
    with pytest.raises(ValueError, match=r"shard 'a': relief = -1.0 must be a finite number >= 0"):
        solve_placement(inp)


def test_unplaceable_shard_gets_a_reason_and_the_rest_a_plan():
    inp = PlacementInput(
        shards=[shard("big", cpu=8), shard("ok", current="h1"), shard("new")],
        hosts=[host("h1", cpu=4), host("h3", cpu=6)],
        candidates=costs(
            {(s, h): 1 if h == "h3" else 2 for s in ("big", "ok", "new") for h in ("h1", "h3")}
        ),
    )
    result = solve(inp)
    assert result.status == Status.PARTIAL
    assert result.assignment == {"ok": "h3", "new": "h3"}
    assert result.unplaced == {
        "big": "no allowed host has 8 cpu free at the forecast upper bound (best: h3 with 6)"
    }
    assert result.explanation == (
        "shard big: no allowed host has 8 cpu free at the forecast upper bound (best: h3 with 6)",
    )


def test_shard_with_every_host_blocked_stays_where_it_is():
    inp = PlacementInput(
        shards=[shard("a", current="h1"), shard("b")],
        hosts=[host("h1"), host("h2")],
        candidates=costs(
            {("a", "h1"): 1, ("a", "h2"): 1, ("b", "h1"): 1, ("b", "h2"): 2},
            {("a", "h1"): "trust", ("a", "h2"): "trust"},
        ),
    )
    result = solve(inp)
    assert result.assignment == {"a": "h1", "b": "h1"}
    assert result.explanation == ("shard a: every candidate host is blocked (trust: 2 hosts)",)
    assert result.unfixed == ("policy: shards on hosts not allowed for them: a",)


def test_latency_limit_no_pair_meets_is_reported_and_the_rest_planned():
    inp = PlacementInput(
        shards=[shard("a"), shard("b")],
        hosts=[host("x", provider="p1"), host("y", provider="p2")],
        candidates=costs({("a", "x"): 1, ("b", "y"): 1}),
        dependencies=[Dependency("a", "b", 5)],
        latency_ms={("p1", "p2"): 12},
    )
    result = solve(inp)
    assert result.assignment == {"a": "x", "b": "y"}
    assert result.explanation == (
        "shards a,b: max_latency_ms 5 but the closest pair of usable hosts is x-y at 12 ms",
    )
    assert result.unfixed[0].startswith("latency: shards a,b: 12 ms between x and y")


def test_capacity_below_demand_overloads_least_and_says_so():
    inp = PlacementInput(
        shards=[
            shard("a", cpu=3, current="h1"),
            shard("b", cpu=3, current="h1"),
            shard("c", cpu=3, current="h1"),
        ],
        hosts=[host("h1", cpu=4), host("h2", cpu=4)],
        candidates=costs({(s, h): 1 for s in "abc" for h in ("h1", "h2")}),
    )
    result = solve(inp)
    assert result.status == Status.PARTIAL
    assert sorted(Counter(result.assignment.values()).values()) == [1, 2]
    assert result.explanation == (
        "capacity: the shards need 9 cpu at the forecast upper bound but all hosts together have 8",
    )
    (line,) = result.unfixed
    assert "cpu 6 > capacity 4" in line


def test_group_overcommit_is_the_least_overload():
    inp = PlacementInput(
        shards=[shard(s, cpu=3) for s in "abc"],
        hosts=[host("h1", cpu=5), host("h2", cpu=5)],
        candidates=costs({(s, h): 1 for s in "abc" for h in ("h1", "h2")}),
    )
    result = solve(inp)
    (line,) = result.unfixed
    assert "cpu 6 > capacity 5" in line
    assert result.penalty > 0
    assert result.objective == pytest.approx(3 + result.penalty)


def test_budget_below_overloaded_hosts_relieves_the_worst():
    """Three hosts overloaded, one move allowed: it goes to the host overloaded most."""
    shards = [
        shard("a1", current="h1", cpu=5),
        shard("a2", current="h1", cpu=5),
        shard("b1", current="h2", cpu=5),
        shard("b2", current="h2", cpu=4),
        shard("c1", current="h3", cpu=5),
        shard("c2", current="h3", cpu=3.5),
    ]
    hosts = [host(h, cpu=8) for h in ("h1", "h2", "h3", "spare")]
    inp = PlacementInput(
        shards=shards,
        hosts=hosts,
        candidates=costs({(s.shard_id, h.host_id): 1 for s in shards for h in hosts}),
        budget=Budget(max_moves=1),
    )
    result = solve(inp)
    assert result.status == Status.PARTIAL
    (move,) = result.moves
    assert (move.from_host, move.to_host, move.reason) == ("h1", "spare", "overloaded")
    (line,) = result.explanation
    assert line.startswith("budget: at least 3 moves are needed but max_moves is 1")
    assert "hosts over capacity now: h1, h2, h3" in line
    assert [u.split(":")[1].strip().split()[1] for u in result.unfixed] == ["h2", "h3"]


def test_new_shard_beyond_the_budget_is_unplaced_with_a_reason():
    inp = PlacementInput(
        shards=[shard("a", current="gone"), shard("b", current="gone")],
        hosts=[host("h1")],
        candidates=costs({("a", "h1"): 1, ("b", "h1"): 1}),
        budget=Budget(max_moves=1),
    )
    result = solve(inp)
    assert len(result.assignment) == 1
    assert list(result.unplaced.values()) == ["no room within the move budget and time limit"]
    assert result.explanation[0].startswith("budget: at least 2 moves are needed")


def test_wall_clock_limit_holds_end_to_end_on_a_tight_instance():
    """On an instance it cannot finish, the call stops (build, pre-checks, heuristic, LP and
    MIP draw on one clock) and returns a sound plan naming what it cut. The wall time itself
    against the +10 % target is measured in bench/bench_placement.py, not asserted here."""
    inp = random_instance(3_000, 60, 1, "tight")
    result = solve_placement(inp, SolveOptions(time_limit_s=LIMIT_S, mip_rel_gap=0.0))
    assert_plan_sound(inp, result)
    assert result.status != "optimal"  # it was stopped, not finished
    assert len(result.assignment) == 3_000
    assert result.cut, "a stopped solve names the phases it cut"
    assert [line for line in result.explanation if line.startswith("time limit 6 s: ")] == [
        f"time limit 6 s: {cut}" for cut in result.cut
    ]


def test_limit_spent_on_the_build_gives_the_heuristic_plan_and_names_what_was_cut():
    """A limit the instance build alone uses up: no problem, LP or MIP, the family pre-checks
    skipped, and the heuristic has no time, so every shard stays where it runs; the plan is
    still checked and its cut phases named."""
    inp = random_instance(1_000, 50, 0, "tight")
    result = solve(inp, SolveOptions(time_limit_s=0.001))
    assert [cut.split(":")[0] for cut in result.cut] == [
        "pre-checks",
        "problem, LP and MIP skipped",
        "heuristic",
    ]
    assert result.moves == ()
    assert result.assignment == {s.shard_id: s.current_host for s in inp.shards}
    assert result.lp_bound is None and result.gap is None
    assert result.stats["problem_ms"] >= 0 and "lp_ms" not in result.stats


def test_unhurried_solve_cuts_nothing():
    result = solve(random_instance(300, 15, seed=5), SolveOptions())
    assert result.cut == ()
    assert not any(line.startswith("time limit") for line in result.explanation)


@pytest.mark.parametrize(
    ("spent", "top_k", "expected", "cut"),
    [
        (0.1, 10, (True, 10), None),  # 9.4 s left: plenty
        (2.0, 10, (True, 7), "candidates: the 7 cheapest per shard instead of 10"),
        (2.0, None, (True, None), None),  # no pruning asked: nothing to cut
        (4.0, 10, (True, 2), "candidates: the 2 cheapest per shard instead of 10"),
        (6.0, 10, (False, 10), "problem, LP and MIP skipped"),
    ],
)
def test_time_left_after_the_build_decides_the_milp_and_candidates_per_shard(
    spent, top_k, expected, cut
):
    """A 10 s limit (0.5 s kept back to finish) after `spent` seconds of instance, candidates
    and pre-checks: the MILP path needs as much time left as was spent, all of a shard's top-k
    five times as much."""
    timer = _Timer(10.0)
    timer.start -= spent
    assert _affordable(timer, top_k) == expected
    assert len(timer.cut) == (cut is not None)
    assert cut is None or timer.cut[0].startswith(cut)


def test_budget_too_small_for_forced_moves_says_so():
    inp = PlacementInput(
        shards=[shard(s, current="bad") for s in "ab"],
        hosts=[host("bad"), host("good")],
        candidates=costs(
            {("a", "bad"): 1, ("b", "bad"): 1, ("a", "good"): 2, ("b", "good"): 2},
            {("a", "bad"): "trust", ("b", "bad"): "trust"},
        ),
        budget=Budget(max_moves=1),
    )
    result = solve(inp)
    (line,) = result.explanation
    assert line.startswith("budget: at least 2 moves are needed but max_moves is 1")
    assert "a, b" in line
    assert len(result.moves) == 1
    assert result.unfixed == (
        "policy: shards on hosts not allowed for them: "
        + next(s for s in "ab" if result.assignment[s] == "bad"),
    )


def test_same_input_in_any_order_gives_the_same_assignment():
    inp = random_instance(120, 8, seed=3)
    first = solve(inp, SolveOptions())
    shuffled = PlacementInput(
        shards=list(reversed(inp.shards)),
        hosts=list(reversed(inp.hosts)),
        candidates=inp.candidates,
        dependencies=inp.dependencies,
        latency_ms=inp.latency_ms,
        budget=inp.budget,
    )
    assert solve(shuffled, SolveOptions()).assignment == first.assignment
    assert solve(inp, SolveOptions()).assignment == first.assignment


def test_synthetic_instance_solution_is_feasible_and_beats_greedy():
    inp = random_instance(300, 15, seed=5)
    result = solve(inp, SolveOptions())
    assert result.status in (Status.OPTIMAL, Status.FEASIBLE_WITH_GAP)
    assert check_assignment(inp, result.assignment) == []
    assert result.gap <= 0.01
    greedy = greedy_placement(inp)
    if not greedy.unfixed:
        assert result.objective <= greedy.objective + 1e-6


@pytest.mark.parametrize(
    ("inp", "message"),
    [
        (
            PlacementInput([shard("a"), shard("a")], [host("h")], costs({})),
            "duplicate shard_id 'a'",
        ),
        (PlacementInput([shard("a", cpu=-1)], [host("h")], costs({})), "shard 'a': cpu = -1"),
        (
            PlacementInput([shard("a")], [host("h")], costs({("zz", "h"): 1})),
            "unknown shard_id 'zz'",
        ),
        (
            PlacementInput([shard("a")], [host("h")], costs({("a", "qq"): 1})),
            "unknown host_id 'qq'",
        ),
        (
            PlacementInput([shard("a")], [host("h")], costs({("a", "h"): float("nan")})),
            "term 'run_cost' = nan is not finite",
        ),
        (
            PlacementInput(
                [shard("a")], [host("h")], costs({}), dependencies=[Dependency("a", "b", 5)]
            ),
            "unknown shard 'b'",
        ),
        (
            PlacementInput([shard("a")], [host("h")], costs({}), latency_ms={("h", "mars"): 3}),
            "not a pair of known hosts or providers",
        ),
        (
            PlacementInput([shard("a")], [host("h")], costs({}), budget=Budget(max_moves=-1)),
            "max_moves = -1",
        ),
    ],
)
def test_bad_input_names_the_field_and_value(inp, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        solve_placement(inp)


def test_duplicate_candidate_is_rejected():
    table = CandidateTable.from_costs(
        [CandidateCost("a", "h", {"x": 1}), CandidateCost("a", "h", {"x": 2})]
    )
    with pytest.raises(ValueError, match=r"candidate \('a', 'h'\) is scored twice"):
        solve_placement(PlacementInput([shard("a")], [host("h")], table))
