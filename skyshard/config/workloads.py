"""Schema of `workloads.yaml`: workloads, how they split into shards, and what each shard needs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from skyshard.config.base import Identifier, NonNegative, Positive, Resources, StrictModel
from skyshard.config.providers import DataClass


class ShardSize(StrictModel):
    """How big one shard is, by the resource that decides the split (exactly one key)."""

    cpu: Positive | None = None
    mem_gb: Positive | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ShardSize:
        if (self.cpu is None) == (self.mem_gb is None):
            raise ValueError("exactly one of cpu or mem_gb")
        return self


class HealthCheck(StrictModel):
    """How to tell that a shard answers: an HTTP GET on a path and port of the shard."""

    http_path: str = Field(default="/health", pattern=r"^/[A-Za-z0-9/_.-]*$")
    port_name: str = "http"
    timeout_s: float = Field(default=2, gt=0, le=60)


class Runtime(StrictModel):
    """What runs on the host: an argv list (never a shell string) and its health check."""

    command: list[str] = Field(min_length=1)
    health_check: HealthCheck = Field(default_factory=HealthCheck)


class Endpoint(StrictModel):
    """A port other shards talk to."""

    name: Identifier
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp", "http", "grpc"] = "tcp"


class Dependency(StrictModel):
    """This workload's shards call every shard of `workload` and need it within `max_latency_ms`."""

    workload: Identifier
    max_latency_ms: Positive


class PlacementRules(StrictModel):
    """Where the shards may run."""

    allowed_providers: list[Identifier] | None = None
    allowed_regions: list[str] | None = None
    anti_affinity: bool = Field(
        default=False, description="At most one shard of this workload per host."
    )
    requires_labels: dict[str, str] = Field(default_factory=dict)


class Workload(StrictModel):
    """A service that skyshard splits into shards of `shard_size`."""

    id: Identifier
    resources: Resources
    state_gb: NonNegative = 0
    shard_size: ShardSize
    runtime: Runtime
    endpoints: list[Endpoint] = Field(default_factory=list)
    depends_on: list[Dependency] = Field(default_factory=list)
    data_class: DataClass = "internal"
    placement: PlacementRules = Field(default_factory=PlacementRules)
    current_hosts: list[Identifier] = Field(
        min_length=1, description="Hosts the shards run on now, assigned round-robin."
    )

    @model_validator(mode="after")
    def _shard_size_fits(self) -> Workload:
        size = self.shard_size.cpu or self.shard_size.mem_gb
        total = self.resources.cpu if self.shard_size.cpu else self.resources.mem_gb
        if size and total and size > total:
            raise ValueError(f"shard_size {size} is larger than the workload's total {total}")
        return self


class WorkloadsFile(StrictModel):
    """Top level of `workloads.yaml`."""

    workloads: list[Workload] = Field(min_length=1)
