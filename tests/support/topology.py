"""A production-like test topology: hosts in network namespaces with their own non-loopback
addresses, a real OpenSSH sshd each (port 22, trusting the process's transfer CA, so chunks go
host to host under move certificates), a non-root login user per host and the system
`/usr/bin/python3` (not the broker's virtualenv; it has no `zstandard`, so chunks go through
the `zstd` command). Reusable by every suite that touches SSH, the runtime, migrations, probes
and routing; needs root (namespaces, users) and skips without it, except in CI.

Host files live below a world-traversable temporary folder: sshd reads `authorized_keys` with
the login user's rights, and pytest's own temporary folders are private to root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from skyshard.transport.access import ACTIONS
from tests.support.hosts import TestHost, shared_transfer_ca
from tests.support.netns import Namespaces, netns_missing_reason
from tests.support.sshd import sshd_missing_reason, start_sshd, write_ed25519_key

SYSTEM_PYTHON = Path("/usr/bin/python3")
SSH_PORT = 22


def topology_missing_reason() -> str | None:
    """Why the topology cannot be built here, or None when it can."""
    reason = netns_missing_reason() or sshd_missing_reason()
    if reason:
        return reason
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing (apt-get install -y python3)"
    if shutil.which("useradd") is None:
        return "useradd is missing (passwd package)"
    if shutil.which("zstd") is None:
        return "the zstd command is missing (apt-get install -y zstd); python3 has no zstandard"
    return None


def require_topology() -> None:
    reason = topology_missing_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the namespace topology tests: {reason}")
        pytest.skip(reason)


def host_root(host: TestHost, name: str) -> Path:
    """A fresh host root `<host folder>/roots/<name>` owned by the host's login user."""
    path = host.root / "roots" / name
    path.mkdir(parents=True)
    _chown(path, host.sshd.user)
    return path


@dataclass
class Topology:
    """`count` namespace hosts `host-a, host-b, ...` (providers `prov-a, ...`) and the broker's
    client key, authorized on every host."""

    spaces: Namespaces
    base: Path
    client_key: Path
    hosts: dict[str, TestHost] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)

    def set_link(self, host_id: str, up: bool) -> None:
        self.spaces.set_link(self.index[host_id], up)

    def close(self) -> None:
        for host in self.hosts.values():
            host.sshd.stop()
        # Processes the runtime started outlive sshd; they must go before the namespaces.
        for index in self.index.values():
            listing = ["ip", "netns", "pids", self.spaces.name(index)]
            pids = subprocess.run(listing, capture_output=True, text=True, check=False).stdout
            for pid in pids.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
        self.spaces.close()
        for host in self.hosts.values():
            subprocess.run(["userdel", host.sshd.user], capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)


def _chown(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _add_user(name: str, home: Path) -> None:
    subprocess.run(["userdel", name], capture_output=True, check=False)
    # /bin/sh (dash) reads no rc file for commands: each remote command stays cheap.
    # Password "*": no password login, yet not "locked" ("!"), which sshd would refuse.
    subprocess.run(["useradd", "--home-dir", str(home), "--no-create-home", "--user-group",
                    "--password", "*",
                    "--shell", "/bin/sh", name], check=True, capture_output=True)  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    _chown(home, name)


def start_topology(count: int = 3) -> Topology:
    """Namespaces, users and sshds; `close()` removes all of it (also after a partial start)."""
    spaces = Namespaces(count)
    base = Path(tempfile.mkdtemp(prefix=f"{spaces.prefix}-"))
    base.chmod(0o755)
    topology = Topology(spaces, base, base / "broker" / "client_ed25519")
    try:
        client_line = write_ed25519_key(topology.client_key, "skyshard-broker")
        spaces.open()
        for index in range(1, count + 1):
            letter = "abcdefgh"[index - 1]
            host_id, folder = f"host-{letter}", base / f"host-{letter}"
            user = f"{spaces.prefix}u{index}"
            folder.mkdir(mode=0o755)
            _add_user(user, folder / "home")
            prefix = tuple(spaces.exec_prefix(index))
            sshd = start_sshd(
                folder / "sshd", address=spaces.address(index), port=SSH_PORT,
                extra_authorized_keys=[client_line], command_prefix=prefix,
                trusted_user_ca=shared_transfer_ca()[1].with_name("transfer_ca.pub"),
            )  # fmt: skip
            (folder / "sshd").chmod(0o755)
            (folder / "sshd" / "authorized_keys").chmod(0o644)
            sshd.user = user
            topology.hosts[host_id] = TestHost(host_id, f"prov-{letter}", sshd, folder, prefix,
                                               str(SYSTEM_PYTHON))  # fmt: skip
            topology.index[host_id] = index
    except BaseException:
        topology.close()
        raise
    return topology


@dataclass
class SkyLayout:
    """A test's sky on some of the topology's hosts (those with a root): workloads, pinned host
    keys (None: not pinned) and the broker's grants per provider."""

    roots: dict[str, Path]
    workloads: list[dict]
    host_keys: dict[str, str | None]
    grants: dict[str, list[str]]

    @classmethod
    def full(cls, topology: Topology, roots: dict[str, Path], workloads: list[dict]) -> SkyLayout:
        """Every host pinned, every action granted on every provider."""
        hosts = [topology.hosts[host_id] for host_id in roots]
        keys: dict[str, str | None] = {h.host_id: h.sshd.host_key_line for h in hosts}
        return cls(roots, workloads, keys, {h.provider_id: sorted(ACTIONS) for h in hosts})


def write_topology_sky(home: Path, topology: Topology, layout: SkyLayout) -> None:
    """providers.yaml (one provider per host, pinned keys), workloads.yaml, policy.yaml and the
    broker's client key and transfer CA in `keys/` (mode 0600)."""
    providers = []
    for host_id in layout.roots:
        host = topology.hosts[host_id]
        entry = {
            "id": host_id, "region": "local", "address": host.sshd.address, "port": SSH_PORT,
            "user": host.sshd.user, "capacity": {"cpu": 8, "mem_gb": 16, "net_mbps": 1000},
            "root": str(layout.roots[host_id]), "python": str(SYSTEM_PYTHON),
        }  # fmt: skip
        if layout.host_keys.get(host_id):
            entry["host_key"] = layout.host_keys[host_id]
        providers.append({
            "id": host.provider_id, "kind": "colo", "regions": ["local"],
            "contract": {"price_per_cpu_hour": 0.02}, "hosts": [entry],
        })  # fmt: skip
    policy = {"operators": [{"id": "broker", "grants": [
        {"provider": provider, "actions": actions} for provider, actions in layout.grants.items()
    ]}]}  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    for name, document in (
        ("providers.yaml", {"providers": providers}),
        ("workloads.yaml", {"workloads": layout.workloads}),
        ("policy.yaml", policy),
    ):
        (home / name).write_text(yaml.safe_dump(document, sort_keys=False))
    keys = home / "keys"
    keys.mkdir(exist_ok=True)
    shutil.copyfile(topology.client_key, keys / "client_ed25519")
    (keys / "client_ed25519").chmod(0o600)
    shutil.copyfile(shared_transfer_ca()[1], keys / "transfer_ca")
    (keys / "transfer_ca").chmod(0o600)


@contextlib.contextmanager
def running_topology(count: int = 3) -> Iterator[Topology]:
    require_topology()
    topology = start_topology(count)
    try:
        yield topology
    finally:
        topology.close()


def in_host(host: TestHost, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `argv` as root in the host's mount and network namespaces (what its sshd sees:
    `ip netns exec` gives each host its own mount namespace)."""
    command = ["nsenter", f"--target={host.sshd.process.pid}", "--mount", "--net", "--", *argv]
    return subprocess.run(command, check=check, capture_output=True, text=True)
