"""Shards: workloads expanded by `shard_size`, with their dependency graph checked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from skyshard.config.base import Resources
from skyshard.config.errors import ConfigError, ConfigProblem
from skyshard.config.workloads import Endpoint, PlacementRules, Runtime, Workload


@dataclass(frozen=True)
class ShardDependency:
    shard_id: str
    max_latency_ms: float


@dataclass(frozen=True)
class Shard:
    """One independently placeable unit of a workload."""

    id: str
    workload_id: str
    index: int
    resources: Resources
    state_gb: float
    runtime: Runtime
    endpoints: tuple[Endpoint, ...]
    depends_on: tuple[ShardDependency, ...]
    data_class: str
    placement: PlacementRules
    current_host: str


def shard_count(workload: Workload) -> int:
    """How many shards a workload splits into: its total over `shard_size`, rounded up."""
    if workload.shard_size.cpu:
        total, size = workload.resources.cpu, workload.shard_size.cpu
    else:
        total, size = workload.resources.mem_gb, workload.shard_size.mem_gb
    return max(1, math.ceil(total / size - 1e-9))


def shard_ids(workload: Workload) -> list[str]:
    count = shard_count(workload)
    width = max(3, len(str(count - 1)))
    return [f"{workload.id}-{i:0{width}d}" for i in range(count)]


def expand_workloads(workloads: Sequence[Workload], file: Path | str) -> list[Shard]:
    """Split every workload into shards; each shard depends on every shard of its dependencies.

    Resources and state divide evenly; the first `len(current_hosts)` shards go round-robin
    over the workload's current hosts.
    """
    check_dependency_graph(workloads, file)
    ids_by_workload = {w.id: shard_ids(w) for w in workloads}
    shards: list[Shard] = []
    for workload in workloads:
        ids = ids_by_workload[workload.id]
        share = 1 / len(ids)
        dependencies = tuple(
            ShardDependency(target, dep.max_latency_ms)
            for dep in workload.depends_on
            for target in ids_by_workload[dep.workload]
        )
        for index, shard_id in enumerate(ids):
            shards.append(
                Shard(
                    id=shard_id,
                    workload_id=workload.id,
                    index=index,
                    resources=workload.resources.scaled(share),
                    state_gb=workload.state_gb * share,
                    runtime=workload.runtime,
                    endpoints=tuple(workload.endpoints),
                    depends_on=dependencies,
                    data_class=workload.data_class,
                    placement=workload.placement,
                    current_host=workload.current_hosts[index % len(workload.current_hosts)],
                )
            )
    return shards


def check_dependency_graph(workloads: Sequence[Workload], file: Path | str) -> None:
    """Unknown targets, duplicate ids and cycles are configuration errors."""
    problems: list[ConfigProblem] = []
    index_of: dict[str, int] = {}
    for i, workload in enumerate(workloads):
        if workload.id in index_of:
            problems.append(
                ConfigProblem(file, f"workloads[{i}].id", workload.id, "a unique workload id")
            )
        index_of.setdefault(workload.id, i)
    for i, workload in enumerate(workloads):
        for j, dep in enumerate(workload.depends_on):
            if dep.workload not in index_of:
                problems.append(
                    ConfigProblem(
                        file,
                        f"workloads[{i}].depends_on[{j}].workload",
                        dep.workload,
                        f"one of the workload ids {sorted(index_of)}",
                    )
                )
            elif dep.workload == workload.id:
                problems.append(
                    ConfigProblem(
                        file,
                        f"workloads[{i}].depends_on[{j}].workload",
                        dep.workload,
                        "another workload (a workload cannot depend on itself)",
                    )
                )
    if problems:
        raise ConfigError(problems)
    cycle = _find_cycle({w.id: [d.workload for d in w.depends_on] for w in workloads})
    if cycle:
        start = index_of[cycle[0]]
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    f"workloads[{start}].depends_on",
                    " -> ".join(cycle),
                    "an acyclic dependency graph",
                )
            ]
        )


def _find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a closed path of ids, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None
