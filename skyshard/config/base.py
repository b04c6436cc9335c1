"""Shared pydantic base and field types for the configuration files."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", strict=True)]
"""Provider, host, workload, shard and operator ids: lowercase letters, digits and dashes.

Ids travel to remote hosts (paths, process names), so they are kept to a shell- and
path-safe alphabet at the door rather than escaped later."""

NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class StrictModel(BaseModel):
    """Unknown keys are errors; values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(StrictModel):
    """Resources a host offers or a shard needs."""

    cpu: NonNegative = 0
    mem_gb: NonNegative = 0
    gpu: NonNegative = 0
    net_mbps: NonNegative = 0

    def scaled(self, factor: float) -> Resources:
        return Resources(
            cpu=self.cpu * factor,
            mem_gb=self.mem_gb * factor,
            gpu=self.gpu * factor,
            net_mbps=self.net_mbps * factor,
        )
