"""Placement constraint families, each defined once (`base.Family`): its MILP rows, its test
for one more shard on a host (heuristic and greedy), its check of a finished plan and its
reasons for the explanation. `FAMILIES` is the registry every consumer iterates, in this order
(the order of the MILP's rows and of the checker's and pre-checks' lines)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from skyshard.placement.constraints.base import Family
from skyshard.placement.constraints.budget import MoveBudget
from skyshard.placement.constraints.capacity import Capacity
from skyshard.placement.constraints.gpu_devices import GpuDevices
from skyshard.placement.constraints.groups import Affinity, AntiAffinity
from skyshard.placement.constraints.latency import Latency
from skyshard.placement.constraints.max_shards import MaxShards

FAMILIES: tuple[type[Family], ...] = (
    Capacity,
    GpuDevices,
    AntiAffinity,
    Affinity,
    Latency,
    MoveBudget,
    MaxShards,
)


def rules_from_config(items: Sequence[tuple[str, Mapping[str, object]]]) -> list[object]:
    """Configured rules, (family name, fields) each, as the `PlacementInput.rules` their
    families read; list values become tuples. The family's `bind` validates the values."""
    rule_types = {f.name: f.rule_type for f in FAMILIES if f.rule_type is not None}
    rules = []
    for i, (name, fields) in enumerate(items):
        rule_type = rule_types.get(name)
        if rule_type is None:
            raise ValueError(
                f"placement_rules[{i}].rule = {name!r}: not one of {sorted(rule_types)}"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        try:
            rules.append(rule_type(**values))
        except TypeError as error:  # a missing or unknown field
            raise ValueError(f"placement_rules[{i}] ({name}): {error}") from None
    return rules
