"""The MIP worker process: the same answer as in process, and stopped at its deadline."""

from __future__ import annotations

import numpy as np
import pytest

import skyshard.placement.solve as solve_module
from skyshard.placement import SolveOptions, solve_placement
from skyshard.placement.candidates import eligible_candidates, top_k_mask
from skyshard.placement.highs import solve_mip
from skyshard.placement.instance import build_instance
from skyshard.placement.mip_worker import solve_mip_in_worker
from skyshard.placement.problem import MilpProblem, build_problem, penalties
from tests.placement.packing import assert_plan_sound
from tests.support.synthetic import random_instance


def _problem() -> MilpProblem:
    inst = build_instance(random_instance(120, 8, seed=3))
    cands = eligible_candidates(inst)
    return build_problem(inst, cands, top_k_mask(inst, cands, 5), penalties(inst, cands))


def test_worker_answers_as_the_solver_in_process_does():
    problem = _problem()
    here = solve_mip(problem, 30, 0.0)
    there = solve_mip_in_worker(problem, 30, 0.0, start=None, kill_after_s=60)
    assert there is not None and there.feasible and there.proven
    assert there.objective == here.objective
    np.testing.assert_array_equal(there.values, here.values)


def test_worker_keeps_the_start_it_is_given():
    problem = _problem()
    start = solve_mip(problem, 30, 0.0).values
    there = solve_mip_in_worker(problem, 30, 0.0, start=start, kill_after_s=60)
    assert there is not None
    assert there.objective <= float(problem.cost @ start) + 1e-6


def test_worker_past_its_deadline_is_stopped_without_an_answer():
    assert solve_mip_in_worker(_problem(), 30, 0.0, start=None, kill_after_s=0.0) is None


def test_solve_with_the_mip_in_a_worker_gives_the_same_plan(monkeypatch):
    """The path large instances take (an LP of a second or more), forced on a small one."""
    inp = random_instance(300, 15, seed=5)
    options = SolveOptions(time_limit_s=30, mip_rel_gap=0.0, top_k=None)
    here = solve_placement(inp, options)
    monkeypatch.setattr(solve_module, "WORKER_LP_S", 0.0)
    there = solve_placement(inp, options)
    assert "mip_ms" in here.stats and "mip_ms" in there.stats
    assert_plan_sound(inp, there)
    assert there.assignment == here.assignment
    assert there.objective == pytest.approx(here.objective)
    assert there.cut == here.cut == ()
