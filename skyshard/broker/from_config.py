"""The broker's way into the configured sky: SSH endpoints with pinned host keys from
`providers.yaml`, its client key from the keys folder, and its grants from `policy.yaml`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from skyshard.broker.migration import HostAccess
from skyshard.config.errors import ConfigError, ConfigProblem
from skyshard.config.providers import Host
from skyshard.config.sky import PROVIDERS_FILE, Sky
from skyshard.transport.access import AccessPolicy, Denial
from skyshard.transport.certificates import TransferCA
from skyshard.transport.ssh import (
    ConnectionPool,
    SshEndpoint,
    SshSession,
    private_key_problem,
)
from skyshard.transport.validate import ValidationError
from skyshard.trust.contracts import access_grants

BROKER_OPERATOR = "broker"
"""The operator id the broker acts as; `policy.yaml` must grant it the migration actions."""
KEYS_DIR = "keys"
CLIENT_KEY_NAME = "client_ed25519"
"""The broker's SSH client key (OpenSSH Ed25519 private key, mode 0600) in the keys folder."""
TRANSFER_CA_NAME = "transfer_ca"
"""The broker's CA for move-scoped transfer certificates (OpenSSH Ed25519 private key, 0600);
every host's sshd lists its `.pub` in TrustedUserCAKeys (docs/migrations.md)."""


def client_key_path(sky: Sky) -> Path:
    """`<sky home>/keys/client_ed25519`: `$SKYSHARD_HOME/keys` (the keys folder of
    `paths.keys_dir()`), or the demo sky's own `keys/`, where its generator writes the key."""
    return sky.home / KEYS_DIR / CLIENT_KEY_NAME


def transfer_ca(sky: Sky) -> TransferCA:
    """`<sky home>/keys/transfer_ca`, refused with the fix when missing or unreadable."""
    path = sky.home / KEYS_DIR / TRANSFER_CA_NAME
    if not path.is_file():
        raise ConfigError(
            [
                ConfigProblem(
                    path,
                    "file",
                    "missing",
                    "the broker's transfer CA (ssh-keygen -t ed25519 -N '' -f "
                    f"{path}); list {path}.pub in every host's sshd TrustedUserCAKeys",
                )
            ]
        )
    try:
        return TransferCA.load(path)
    except ValidationError as error:
        raise ConfigError([ConfigProblem(path, "file", "unreadable", str(error))]) from None


def broker_policy(sky: Sky, on_denied: Callable[[Denial], None] | None = None) -> AccessPolicy:
    """The access policy of `policy.yaml`; refusals are reported to `on_denied`."""
    return AccessPolicy.from_mapping(access_grants(sky.policy), on_denied)


def host_endpoint(sky: Sky, host_id: str, client_key: Path) -> SshEndpoint:
    """The endpoint of a configured host (and of its provider's jump host, if any)."""
    if host_id not in sky.hosts:
        raise ConfigError(
            [
                ConfigProblem(
                    sky.home / PROVIDERS_FILE,
                    "providers[*].hosts[*].id",
                    host_id,
                    f"a configured host id; known: {sorted(sky.hosts)}",
                )
            ]
        )
    provider, host = sky.hosts[host_id]
    at = f"providers[{[p.id for p in sky.providers].index(provider.id)}]"
    jump = None
    if provider.jump_host is not None:
        jump = _endpoint(sky, provider.id, provider.jump_host, client_key, f"{at}.jump_host")
    field = f"{at}.hosts[{[h.id for h in provider.hosts].index(host_id)}]"
    return _endpoint(sky, provider.id, host, client_key, field, jump)


def host_accesses(
    sky: Sky,
    host_ids: Iterable[str],
    pool: ConnectionPool,
    policy: AccessPolicy,
    *,
    client_key: Path | None = None,
    operator: str = BROKER_OPERATOR,
) -> dict[str, HostAccess]:
    """`HostAccess` for each named host, acting as `operator` under `policy`.

    Refuses (ConfigError naming the file, field and value) a missing client key or one that
    group or others may read (like OpenSSH), an unknown host, or a host without a pinned
    `host_key`: the broker never trusts a key on first use.
    """
    client_key = client_key or client_key_path(sky)
    if not client_key.is_file():
        raise ConfigError(
            [
                ConfigProblem(
                    client_key,
                    "file",
                    "missing",
                    "the broker's Ed25519 SSH client key (ssh-keygen -t ed25519 -N '' -f "
                    f"{client_key}), its public key authorized on every host",
                )
            ]
        )
    problem = private_key_problem(client_key)
    if problem:
        raise ConfigError([ConfigProblem(client_key, "mode", "group/other readable", problem)])
    accesses = {}
    for host_id in host_ids:
        endpoint = host_endpoint(sky, host_id, client_key)
        _, host = sky.hosts[host_id]
        accesses[host_id] = HostAccess(
            host_id,
            SshSession(endpoint, policy, operator, pool),
            host.root,
            service_address=host.address,
            bind=host.address,
        )
    return accesses


def _endpoint(
    sky: Sky,
    provider_id: str,
    host: Host,
    client_key: Path,
    field: str,
    jump: SshEndpoint | None = None,
) -> SshEndpoint:
    if not host.host_key:
        raise ConfigError(
            [
                ConfigProblem(
                    sky.home / PROVIDERS_FILE,
                    f"{field}.host_key",
                    host.host_key,
                    f"the pinned public host key of {host.id} ('ssh-ed25519 AAAA...', from "
                    f"ssh-keyscan -p {host.port} {host.address} checked out of band): the broker "
                    "never connects to a host whose key it does not know",
                )
            ]
        )
    return SshEndpoint(
        host_id=host.id,
        provider_id=provider_id,
        address=host.address,
        host_key=host.host_key,
        client_key=client_key,
        port=host.port,
        user=host.user,
        jump=jump,
        python=host.python,
    )
