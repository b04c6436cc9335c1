"""Network namespaces as separate hosts: each its own address on a private bridge.

Addresses come from a 10.213.X.0/24 subnet and exist only on the test bridge (`.254`, in the
root namespace, so the broker can reach the hosts) and inside the namespaces (`.1`, `.2`, ...).
Names and the subnet's third octet carry the creating process id and a serial number, so
parallel runs and several topologies in one process do not collide (15-character interface names).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass, field

SUBNET_PREFIX = "10.213"
# Several topologies may live in one process (a session-wide one beside a test's own).
_SERIALS = itertools.count()
BRIDGE_HOST = 254


def netns_missing_reason() -> str | None:
    """Why namespaces cannot be created here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Namespaces:
    """Namespaces `<prefix>h1..hN` with veth pairs to one bridge; `close()` removes all."""

    count: int
    serial: int = field(default_factory=lambda: next(_SERIALS))
    created: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"ss{os.getpid() % 100000}n{self.serial}"

    @property
    def subnet(self) -> str:
        return f"{SUBNET_PREFIX}.{(os.getpid() + 97 * self.serial) % 250}"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    def name(self, index: int) -> str:
        return f"{self.prefix}h{index}"

    def veth(self, index: int) -> str:
        """The root-namespace end of host `index`'s link (set it down to cut the link)."""
        return f"{self.prefix}v{index}"

    def address(self, index: int) -> str:
        return f"{self.subnet}.{index}"

    def exec_prefix(self, index: int) -> list[str]:
        return ["ip", "netns", "exec", self.name(index)]

    def open(self) -> Namespaces:
        _ip("link", "add", self.bridge, "type", "bridge")
        self.created.append(f"link:{self.bridge}")
        _ip("addr", "add", f"{self.subnet}.{BRIDGE_HOST}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for index in range(1, self.count + 1):
            name, veth, inner = self.name(index), self.veth(index), f"{self.prefix}p{index}"
            _ip("netns", "add", name)
            self.created.append(f"netns:{name}")
            _ip("link", "add", veth, "type", "veth", "peer", "name", inner)
            self.created.append(f"link:{veth}")
            _ip("link", "set", inner, "netns", name)
            _ip("link", "set", veth, "master", self.bridge)
            _ip("link", "set", veth, "up")
            _ip("netns", "exec", name, "ip", "addr", "add", f"{self.address(index)}/24", "dev",
                inner)  # fmt: skip
            _ip("netns", "exec", name, "ip", "link", "set", inner, "up")
            _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        return self

    def set_link(self, index: int, up: bool) -> None:
        _ip("link", "set", self.veth(index), "up" if up else "down")

    def close(self) -> None:
        """Delete everything created, newest first, even after a partial `open`."""
        for item in reversed(self.created):
            kind, name = item.split(":", 1)
            command = ["netns", "del", name] if kind == "netns" else ["link", "del", name]
            subprocess.run(["ip", *command], capture_output=True, check=False)
        self.created.clear()
