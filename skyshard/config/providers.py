"""Schema of `providers.yaml`: provider networks, their hosts, telemetry sources and contracts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from skyshard.config.base import Fraction, Identifier, NonNegative, Resources, StrictModel

ProviderKind = Literal["cloud", "colo", "edge", "marketplace"]
DataClass = Literal["public", "internal", "confidential", "restricted"]
HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ssh-rsa")


class GpuDevices(StrictModel):
    """A host's physical GPUs: `count` devices of one `model` with `memory_gb` each. A shard
    asking for a fraction of a GPU sits on one device; one asking for several takes whole ones."""

    count: int = Field(ge=0)
    model: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    memory_gb: NonNegative = 0


class Host(StrictModel):
    """A machine shards can run on, reached over SSH with a pinned host key."""

    id: Identifier
    region: str
    address: str
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(default="skyshard", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    host_key: str | None = Field(
        default=None, description="Pinned public host key, e.g. 'ssh-ed25519 AAAA...'."
    )
    capacity: Resources
    gpus: GpuDevices | None = Field(
        default=None,
        description="Physical GPU devices; without it capacity.gpu is a plain divisible amount.",
    )
    labels: dict[str, str] = Field(default_factory=dict)
    root: str = Field(
        default="/var/lib/skyshard",
        pattern=r"^/[A-Za-z0-9._/-]*$",
        description="Absolute folder on the host for skyshard's helpers, chunks and shards.",
    )
    python: str = Field(
        default="python3",
        pattern=r"^[A-Za-z0-9._/-]+$",
        description="Interpreter that runs skyshard's host helpers on the host.",
    )

    @model_validator(mode="after")
    def _gpu_capacity_matches_devices(self) -> Host:
        if self.gpus is not None and self.capacity.gpu not in (0, self.gpus.count):
            raise ValueError(
                f"capacity.gpu = {self.capacity.gpu:g} disagrees with gpus.count = "
                f"{self.gpus.count} (leave capacity.gpu out, or make them equal)"
            )
        return self

    @property
    def gpu_capacity(self) -> float:
        """GPUs the host offers: its device count when it declares devices."""
        return float(self.gpus.count) if self.gpus is not None else self.capacity.gpu

    @field_validator("host_key")
    @classmethod
    def _host_key_shape(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.split()
        if len(parts) < 2 or parts[0] not in HOST_KEY_TYPES:
            raise ValueError(f"a public key line starting with one of {', '.join(HOST_KEY_TYPES)}")
        return value


class Source(StrictModel):
    """A telemetry feed: `url` is http(s):// for a live endpoint or file:// for a saved capture;
    `ssh://` (type ssh_probe only) means the provider's own hosts."""

    id: Identifier
    type: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,62}$",
        description="A source type of skyshard.sources.registry (checked by check-config).",
    )
    url: str = Field(pattern=r"^(https?|file|ssh)://")
    params: dict[str, object] = Field(default_factory=dict)
    timeout_s: float = Field(default=10, gt=0, le=300)
    retries: int = Field(default=2, ge=0, le=10)
    replace: Literal["points", "window"] = Field(
        default="points",
        description="What a capture replaces of this source's earlier rows: the points it holds "
        "(same series and timestamp), or everything in the time window it spans.",
    )

    @field_validator("url")
    @classmethod
    def _ssh_only_for_ssh_probe(cls, value: str, info: ValidationInfo) -> str:
        source_type = info.data.get("type")
        if source_type is None:  # the type itself is invalid and reported on its own
            return value
        if source_type == "ssh_probe" and value != "ssh://":
            raise ValueError("'ssh://' for type ssh_probe (it probes the provider's own hosts)")
        if source_type != "ssh_probe" and value.startswith("ssh://"):
            raise ValueError(
                f"an http(s):// or file:// url for type {source_type!r} "
                "(ssh:// is only for type ssh_probe)"
            )
        return value


class Contract(StrictModel):
    """Commercial terms with a provider; list prices apply where no price feed has one."""

    price_basis: Literal["on_demand", "spot", "reserved", "fixed"] = "on_demand"
    price_per_cpu_hour: NonNegative
    price_per_gb_hour: NonNegative = 0
    price_per_gpu_hour: NonNegative = 0
    egress_per_gb: NonNegative = 0
    sla_availability: Fraction = 0.99
    allowed_data_classes: list[DataClass] = Field(default_factory=lambda: ["public", "internal"])
    tier: Literal["bronze", "silver", "gold", "platinum"] = "silver"


class Provider(StrictModel):
    """One provider network: a cloud, a colo, an edge network or a marketplace."""

    id: Identifier
    kind: ProviderKind
    regions: list[str] = Field(min_length=1)
    contract: Contract
    hosts: list[Host] = Field(min_length=1)
    sources: list[Source] = Field(default_factory=list)
    jump_host: Host | None = None

    @model_validator(mode="after")
    def _hosts_in_declared_regions(self) -> Provider:
        for index, host in enumerate(self.hosts):
            if host.region not in self.regions:
                raise ValueError(
                    f"hosts[{index}].region {host.region!r} is not one of regions {self.regions}"
                )
        return self


class ProvidersFile(StrictModel):
    """Top level of `providers.yaml`."""

    providers: list[Provider] = Field(min_length=1)
