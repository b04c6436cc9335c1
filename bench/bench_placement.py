"""Placement benchmark: MILP solve time and gap vs the LP bound, beside the greedy baseline.

Run: .venv/bin/python bench/bench_placement.py [--quick]
Also times scipy.optimize.milp (HiGHS too) on the same pruned MILP, to justify highspy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from skyshard.placement import SolveOptions, check_assignment, greedy_placement, solve_placement
from skyshard.placement.candidates import eligible_candidates, top_k_mask
from skyshard.placement.highs import solve_mip
from skyshard.placement.instance import build_instance
from skyshard.placement.problem import build_problem
from skyshard.placement.synthetic import random_instance

SIZES = [(1_000, 50, 5.0), (10_000, 200, 60.0)]


def bench_size(n_shards: int, n_hosts: int, target_s: float, seed: int) -> None:
    began = time.perf_counter()
    inp = random_instance(n_shards, n_hosts, seed=seed)
    generated = time.perf_counter() - began
    result = solve_placement(inp, SolveOptions(time_limit_s=target_s * 2))
    violations = check_assignment(inp, result.assignment) if result.assignment else []
    greedy = greedy_placement(inp)
    total = result.build_seconds + result.solve_seconds
    met = total < target_s and result.gap is not None and result.gap < 0.01
    solved = (
        f"gap {100 * result.gap:.3f} % vs LP bound, objective {result.objective:.1f}, "
        f"LP bound {result.lp_bound:.1f}, moves {len(result.moves)}, violations {len(violations)}"
        if result.objective is not None and result.gap is not None and result.lp_bound is not None
        else f"explanation: {' / '.join(result.explanation[:2])}"
    )
    print(
        f"{n_shards:>6} x {n_hosts:<4} seed {seed}: status {result.status.value}, "
        f"build {result.build_seconds:.2f} s, solve {result.solve_seconds:.2f} s, "
        f"total {total:.2f} s (target < {target_s:g} s, gap < 1 %: {'met' if met else 'NOT met'}), "
        f"{solved}, {result.stats} | greedy cost {greedy.objective:.1f} with "
        f"{greedy.stats['unplaced']} unplaced and {greedy.stats['violations']} constraint "
        f"violations (instance generated in {generated:.1f} s)",
        flush=True,
    )


def bench_backends(seed: int) -> None:
    """highspy vs scipy.optimize.milp on one identical pruned MILP (1,000 x 50, K = 40)."""
    inst = build_instance(random_instance(1_000, 50, seed=seed))
    cands = eligible_candidates(inst)
    problem = build_problem(inst, cands, top_k_mask(inst, cands, 40))
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
        f"backends on 1000 x 50 seed {seed} (K=40, one MIP solve): highspy {highspy_s:.2f} s "
        f"(obj {direct.objective:.1f}), scipy.milp {scipy_s:.2f} s (obj {via_scipy.fun:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="only 1,000 x 50, one seed")
    parser.add_argument("--large-only", action="store_true", help="only 10,000 x 200")
    args = parser.parse_args()
    if not args.large_only:
        for seed in [0] if args.quick else [0, 1, 2]:
            bench_size(*SIZES[0], seed=seed)
        bench_backends(seed=0)
    if not args.quick:
        bench_size(*SIZES[1], seed=0)


if __name__ == "__main__":
    main()
