"""What a simulated sky looks like: its size, resolution, seed and end time."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SkyParams:
    """Size and seed of a simulated sky; the series cover [end - days, end) at step_minutes.

    Hosts listen on `port_base` onwards (one port each) and the embedded demo's shards on the
    ports right after them: `ports` in all."""

    providers: int = 6
    hosts_per_provider: int = 4
    shards: int = 48
    days: int = 14
    step_minutes: int = 5
    seed: int = 7
    end: datetime = datetime(2026, 11, 28)
    port_base: int = 22000

    def __post_init__(self) -> None:
        problems = []
        if self.providers < 1:
            problems.append(f"providers={self.providers}: expected at least 1")
        if self.hosts_per_provider < 1:
            problems.append(f"hosts_per_provider={self.hosts_per_provider}: expected >= 1")
        if self.shards < 1:
            problems.append(f"shards={self.shards}: expected at least 1")
        if self.days < 7:
            problems.append(f"days={self.days}: expected at least 7 (planted events need room)")
        if self.step_minutes < 1 or 1440 % self.step_minutes:
            problems.append(f"step_minutes={self.step_minutes}: expected a divisor of 1440")
        if not 1024 <= self.port_base <= 65536 - self.ports:
            problems.append(
                f"port_base={self.port_base}: expected 1024..{65536 - self.ports} "
                f"({self.ports} ports follow it)"
            )
        if self.end.tzinfo is not None:
            problems.append(f"end={self.end}: expected a naive UTC datetime")
        if problems:
            raise ValueError("invalid SkyParams: " + "; ".join(problems))

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    @property
    def ports(self) -> int:
        """Loopback ports the embedded demo uses from `port_base`: hosts, then shards."""
        return self.providers * self.hosts_per_provider + self.shards

    @property
    def steps(self) -> int:
        """Samples per series in the observed window."""
        return self.days * 1440 // self.step_minutes

    def to_json(self) -> dict:
        values = asdict(self)
        values["end"] = self.end.isoformat()
        return values

    @classmethod
    def from_json(cls, values: dict) -> SkyParams:
        fields = dict(values)
        if isinstance(fields.get("end"), str):
            fields["end"] = datetime.fromisoformat(fields["end"])
        return cls(**fields)


DEFAULT_PARAMS = SkyParams()
