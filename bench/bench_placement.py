"""Placement benchmark: MILP solve time and gap vs the LP bound, beside the greedy baseline.

Run: .venv/bin/python -m bench.bench_placement [--quick] [--large-only] [--seeds 0,1,2]
     [--scenarios steady,tight] [--backends]
     .venv/bin/python -m bench.bench_placement --cluster [--replicas 1,2,4] [--seeds 0]
         [--limit 100]
     .venv/bin/python -m bench.bench_placement --consumers [--replicas 1]
Instances come from tests.support.synthetic (feasible by construction; "steady" is the
target case, "tight" a harder one). --backends also times scipy.optimize.milp (HiGHS too) on
one pruned MILP, the measurement behind choosing highspy. --cluster solves the real-GPU-
cluster shape of bench/cluster_shape.py (1,500 hosts x 8,000 shards at 85 % GPU load, times
each replica count), each in a fresh process so its peak memory is its own. --consumers times
what the constraint families feed (instance, candidate filters, problem build, pre-checks,
the heuristic without an LP, the checker, greedy) in CPU seconds, the least of a few runs, so
a shared machine's load barely moves it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from skyshard.placement import (
    PlacementInput,
    SolveOptions,
    check_assignment,
    greedy_placement,
    solve_placement,
)
from skyshard.placement.candidates import eligible_candidates, top_k_mask
from skyshard.placement.check import violations_of
from skyshard.placement.explain import pre_checks, unplaceable
from skyshard.placement.heuristic import lp_guided_assignment
from skyshard.placement.highs import solve_mip
from skyshard.placement.instance import build_instance
from skyshard.placement.problem import build_problem, penalties
from tests.support.synthetic import random_instance

CLUSTER_LIMIT_S = 100.0  # the default solve limit; the target is a plan within 120 s wall
CLUSTER_TARGET_S = 120.0
LIMIT_SLACK = 1.1  # the call ends within the limit plus 10 %
CLUSTER_ONE = [sys.executable, "-m", "bench.bench_placement", "--cluster-one"]
CLUSTER_HEADER = (
    "| replicas | hosts | shards | candidates | wall s (limit) | peak RSS GiB (+ MIP worker) | "
    "status | "
    "moves (budget) | hosts overloaded before -> after | unplaced | GPU packing | target |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)

SIZES = [(1_000, 50, 5.0), (10_000, 200, 60.0)]
TARGET_GAP = 0.01
HEADER = (
    "| shards x hosts | scenario | seed | build s | solve s | total s | gap vs LP bound | "
    "status | objective | greedy cost (unplaced, violations) | moves | target met |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def bench_size(n_shards: int, n_hosts: int, target_s: float, scenario: str, seed: int) -> None:
    inp = random_instance(n_shards, n_hosts, seed, scenario)
    result = solve_placement(inp, SolveOptions(time_limit_s=target_s))
    violations = check_assignment(inp, result.assignment) if result.assignment else []
    assert not violations, violations[:3]
    greedy = greedy_placement(inp)
    total = result.build_seconds + result.solve_seconds
    gap_lp = (
        (result.objective - result.lp_bound) / abs(result.objective)
        if result.objective is not None and result.lp_bound is not None
        else None
    )
    met = total < target_s and gap_lp is not None and gap_lp < TARGET_GAP
    print(
        f"| {n_shards:,} x {n_hosts} | {scenario} | {seed} | {result.build_seconds:.2f} | "
        f"{result.solve_seconds:.2f} | {total:.2f} | "
        f"{'-' if gap_lp is None else f'{100 * gap_lp:.2f} %'} | {result.status.value} | "
        f"{'-' if result.objective is None else f'{result.objective:,.1f}'} | "
        f"{greedy.objective:,.1f} ({greedy.stats['unplaced']}, {greedy.stats['violations']}) | "
        f"{len(result.moves)} | {'met' if met else 'NOT met'} (< {target_s:g} s, < 1 %) |",
        flush=True,
    )
    phases = {k: v for k, v in result.stats.items() if k.endswith("_ms") or k == "columns"}
    print(f"<!-- phases: {phases} {' / '.join(result.explanation[:2])} -->", flush=True)


def bench_backends(seed: int) -> None:
    """highspy vs scipy.optimize.milp on one identical pruned MILP (1,000 x 50, K = 40)."""
    inst = build_instance(random_instance(1_000, 50, seed, "tight"))
    cands = eligible_candidates(inst)
    problem = build_problem(inst, cands, top_k_mask(inst, cands, 40), penalties(inst, cands))
    began = time.perf_counter()
    direct = solve_mip(problem, 120, 0.005)
    highspy_s = time.perf_counter() - began
    began = time.perf_counter()
    via_scipy = milp(
        problem.cost,
        constraints=LinearConstraint(problem.matrix, problem.row_lower, problem.row_upper),
        integrality=problem.integrality,
        bounds=Bounds(np.zeros(len(problem.cost)), np.ones(len(problem.cost))),
        options={"time_limit": 120, "mip_rel_gap": 0.005},
    )
    scipy_s = time.perf_counter() - began
    print(
        f"backends on 1000 x 50 tight seed {seed} (K=40, one MIP solve): highspy {highspy_s:.2f} s "
        f"(obj {direct.objective:.1f}), scipy.milp {scipy_s:.2f} s (obj {via_scipy.fun:.1f})"
    )


def _overloaded_hosts(lines: list[str]) -> int:
    return len({line.split()[2] for line in lines if line.startswith(("capacity", "devices"))})


def cluster_run(replicas: int, seed: int, limit: float) -> dict:
    """One cluster-shaped solve in this process: the figures as a dict."""
    from bench.cluster_shape import cluster_input
    from tests.placement.packing import device_packing_failures

    inp = cluster_input(seed=seed, replicas=replicas)
    before = [
        f"{v.family}: {v.message}"
        for v in check_assignment(inp, {s.shard_id: s.current_host for s in inp.shards})
    ]
    began = time.perf_counter()
    result = solve_placement(inp, SolveOptions(time_limit_s=limit))
    wall = time.perf_counter() - began
    return {
        "replicas": replicas,
        "hosts": len(inp.hosts),
        "shards": len(inp.shards),
        "candidates": len(inp.candidates),
        "wall_s": wall,
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "worker_gib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2,
        "status": result.status.value,
        "moves": len(result.moves),
        "budget": inp.budget.max_moves,
        "before": _overloaded_hosts(before),
        "after": _overloaded_hosts(list(result.unfixed)),
        "unplaced": len(result.unplaced),
        "packing_failures_unreported": len(
            set(device_packing_failures(inp, result.assignment))
            - {line.split()[2].rstrip(":") for line in result.unfixed}
        ),
        "phases": {k: v for k, v in result.stats.items() if k.endswith("_ms")},
        "cut": list(result.cut),
        "objective": result.objective,
        "gap": result.gap,
    }


def bench_cluster(replicas: list[int], seeds: list[int], limit: float) -> None:
    print(CLUSTER_HEADER)
    for seed in seeds:
        for count in replicas:
            run = subprocess.run(
                [*CLUSTER_ONE, str(count), "--seeds", str(seed), "--limit", str(limit)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(run.stdout.strip().splitlines()[-1])
            wall_ok = r["wall_s"] <= min(LIMIT_SLACK * limit, CLUSTER_TARGET_S)
            met = wall_ok and r["peak_gib"] + r["worker_gib"] < 4
            print(
                f"| {count}x (seed {seed}) | {r['hosts']:,} | {r['shards']:,} | "
                f"{r['candidates']:,} | {r['wall_s']:.1f} ({limit:g}) | {r['peak_gib']:.2f} "
                f"(+{r['worker_gib']:.2f}) | "
                f"{r['status']} | "
                f"{r['moves']} ({r['budget']}) | {r['before']} -> {r['after']} | {r['unplaced']} | "
                f"{'ok' if not r['packing_failures_unreported'] else 'FAILED'} | "
                f"{'met' if met else 'NOT met'} (limit + 10 %, < 120 s, < 4 GiB) |",
                flush=True,
            )
            print(
                f"<!-- objective {r['objective']:,.1f}, gap {r['gap']}; phases: {r['phases']} "
                f"cut: {r['cut']} -->",
                flush=True,
            )


CONSUMERS_HEADER = (
    "| input | build, fresh | instance | candidates | problem (top 10) | pre-checks | "
    "heuristic (no LP) | checker | greedy |\n|---|---|---|---|---|---|---|---|---|"
)


def _least_cpu_ms(run: Callable[[], object], repeats: int) -> float:
    spent = []
    for _ in range(repeats):
        began = time.process_time()
        run()
        spent.append(time.process_time() - began)
    return 1000 * min(spent)


def _fresh_build(inp: PlacementInput) -> None:
    """What solve_placement does before its first heuristic, nothing cached from a run before."""
    inst = build_instance(inp)
    cands = eligible_candidates(inst)
    pen = penalties(inst, cands)
    pre_checks(inst, unplaceable(inst))
    build_problem(inst, cands, top_k_mask(inst, cands, 10), pen)


def bench_consumers(replicas: list[int]) -> None:
    """CPU ms (least of a few runs) of each consumer of the constraint families."""
    from bench.cluster_shape import cluster_input

    print(CONSUMERS_HEADER)
    inputs = [
        ("1,000 x 50 steady, seed 0", random_instance(1_000, 50, 0, "steady"), 10),
        *(
            (f"cluster {count}x, seed 0", cluster_input(seed=0, replicas=count), 3)
            for count in replicas
        ),
    ]
    for name, inp, repeats in inputs:
        build_ms = _least_cpu_ms(lambda inp=inp: _fresh_build(inp), repeats)
        inst = build_instance(inp)
        cands = eligible_candidates(inst)
        pen = penalties(inst, cands)
        no_lp = np.zeros(len(cands))
        chosen = lp_guided_assignment(inst, cands, no_lp, 600)
        host_of = np.where(chosen >= 0, cands.host[np.maximum(chosen, 0)], -1)
        timings = [
            _least_cpu_ms(lambda inp=inp: build_instance(inp), repeats),
            _least_cpu_ms(lambda inst=inst: eligible_candidates(inst), repeats),
            _least_cpu_ms(
                lambda inst=inst, cands=cands, pen=pen: build_problem(
                    inst, cands, top_k_mask(inst, cands, 10), pen
                ),
                repeats,
            ),
            _least_cpu_ms(lambda inst=inst: pre_checks(inst, unplaceable(inst)), repeats),
            _least_cpu_ms(
                lambda inst=inst, cands=cands, no_lp=no_lp: lp_guided_assignment(
                    inst, cands, no_lp, 600
                ),
                repeats,
            ),
            _least_cpu_ms(lambda inst=inst, host_of=host_of: violations_of(inst, host_of), repeats),
            _least_cpu_ms(lambda inp=inp: greedy_placement(inp), repeats),
        ]
        print(
            f"| {name} | {build_ms:,.0f} | " + " | ".join(f"{ms:,.0f}" for ms in timings) + " |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="only 1,000 x 50, seed 0, steady")
    parser.add_argument("--large-only", action="store_true", help="only 10,000 x 200")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--scenarios", default="steady,tight")
    parser.add_argument("--backends", action="store_true", help="also highspy vs scipy.milp")
    parser.add_argument("--cluster", action="store_true", help="the real-cluster shape")
    parser.add_argument("--replicas", help="cluster copies (--cluster 1,2,4; --consumers 1)")
    parser.add_argument("--cluster-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--consumers", action="store_true", help="CPU time per consumer")
    parser.add_argument("--limit", type=float, default=CLUSTER_LIMIT_S, help="cluster solve s")
    args = parser.parse_args()
    if args.consumers:
        bench_consumers([int(r) for r in (args.replicas or "1").split(",")])
        return
    if args.cluster_one:
        seed = int(args.seeds.split(",")[0])
        print(json.dumps(cluster_run(args.cluster_one, seed, args.limit)))
        return
    if args.cluster:
        bench_cluster(
            [int(r) for r in (args.replicas or "1,2,4").split(",")],
            [int(s) for s in args.seeds.split(",")],
            args.limit,
        )
        return
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    scenarios = ["steady"] if args.quick else args.scenarios.split(",")
    sizes = SIZES[:1] if args.quick else SIZES[1:] if args.large_only else SIZES
    print(HEADER)
    for n_shards, n_hosts, target_s in sizes:
        for scenario in scenarios:
            for seed in seeds:
                bench_size(n_shards, n_hosts, target_s, scenario, seed)
    if args.backends:
        bench_backends(seed=0)


if __name__ == "__main__":
    main()
