"""Host access built from the sky config: pinned keys, the broker's key, the broker's grants."""

from __future__ import annotations

import pytest

from skyshard.broker.from_config import (
    BROKER_OPERATOR,
    broker_policy,
    client_key_path,
    host_accesses,
)
from skyshard.config.errors import ConfigError
from skyshard.transport.access import AccessDenied
from skyshard.transport.ssh import ConnectionPool
from skyshard.transport.validate import ValidationError
from tests.migration_job.conftest import FAST_SSH


def test_accesses_pin_host_keys_and_use_the_broker_key(site) -> None:
    assert client_key_path(site.sky) == site.home / "keys" / "client_ed25519"
    with site.access() as accesses:
        for host_id, access in accesses.items():
            endpoint = access.session.endpoint
            assert endpoint.host_key == site.hosts[host_id].sshd.host_key_line
            assert endpoint.client_key == site.home / "keys" / "client_ed25519"
            assert endpoint.port == site.hosts[host_id].sshd.port
            assert access.session.operator == BROKER_OPERATOR
            assert access.root == str(site.roots[host_id])
            assert access.bind == access.service_address == site.address(host_id)
            assert access.session.endpoint.python == "/usr/bin/python3"
            assert access.session.endpoint.user != "root"
            # a real round trip over SSH with the broker's key
            assert not access.runtime().status(site.shard).running


def test_a_host_without_a_pinned_key_is_refused_naming_the_field(site) -> None:
    files = site.files()
    files.host_keys["host-b"] = None
    sky = site.write(files)
    with ConnectionPool(FAST_SSH) as pool, pytest.raises(ConfigError) as error:
        host_accesses(sky, ["host-a", "host-b"], pool, broker_policy(sky))
    message = str(error.value)
    assert str(site.home / "providers.yaml") in message
    assert "providers[1].hosts[0].host_key" in message and "host-b" in message


def test_a_missing_client_key_or_unknown_host_is_refused(site) -> None:
    with ConnectionPool(FAST_SSH) as pool:
        with pytest.raises(ConfigError, match="host-z"):
            host_accesses(site.sky, ["host-z"], pool, broker_policy(site.sky))
        (site.home / "keys" / "client_ed25519").unlink()
        with pytest.raises(ConfigError, match="client_ed25519"):
            host_accesses(site.sky, ["host-a"], pool, broker_policy(site.sky))


def test_the_broker_gets_only_the_grants_of_policy_yaml(site) -> None:
    files = site.files()
    files.grants["prov-b"] = ["read_telemetry"]
    sky = site.write(files)
    denials = []
    policy = broker_policy(sky, denials.append)
    policy.check(BROKER_OPERATOR, "prov-b", "read_telemetry")
    with pytest.raises(AccessDenied, match="receive_migration"):
        policy.check(BROKER_OPERATOR, "prov-b", "receive_migration")
    assert [(d.operator, d.provider, d.action) for d in denials] == [
        ("broker", "prov-b", "receive_migration")
    ]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_client_key_readable_by_group_or_others_is_refused_saying_how_to_fix(site, mode) -> None:
    key = site.home / "keys" / "client_ed25519"
    key.chmod(mode)
    with ConnectionPool(FAST_SSH) as pool:
        with pytest.raises(ConfigError) as refused:
            host_accesses(site.sky, ["host-a"], pool, broker_policy(site.sky))
        assert f"chmod 600 {key}" in str(refused.value) and f"{mode:04o}" in str(refused.value)
        key.chmod(0o600)
        (access,) = host_accesses(site.sky, ["host-a"], pool, broker_policy(site.sky)).values()
        key.chmod(mode)  # also refused at connect time, by the transport itself
        with pytest.raises(ValidationError, match="readable by group or others"):
            access.runtime().status(site.shard)
    key.chmod(0o600)
