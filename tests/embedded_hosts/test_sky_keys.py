"""write_sky's key material for the embedded hosts: pinned, private, reused on rewrite."""

from __future__ import annotations

import sys

import paramiko
import pytest

from skyshard.config.sky import load_sky
from skyshard.sim import write_sky
from skyshard.sim.hosts import ensure_ed25519_key
from tests.embedded_hosts.conftest import SMALL


def public_line(path) -> str:
    key = paramiko.Ed25519Key.from_private_key_file(str(path))
    return f"{key.get_name()} {key.get_base64()}"


def test_every_host_key_is_pinned_private_and_distinct(tmp_path):
    write_sky(SMALL, tmp_path)
    sky = load_sky(tmp_path)
    pins = set()
    for host_id, (_, host) in sky.hosts.items():
        path = tmp_path / "keys" / "hosts" / host_id
        assert path.stat().st_mode & 0o777 == 0o600
        assert host.host_key.startswith(public_line(path) + " ")
        assert host.root == str(tmp_path / "hosts" / host_id)
        assert host.python == sys.executable  # the interpreter that generated the sky
        pins.add(host.host_key)
    assert len(pins) == len(sky.hosts) == 4
    client = tmp_path / "keys" / "client_ed25519"
    assert client.stat().st_mode & 0o777 == 0o600
    ca_key = tmp_path / "keys" / "transfer_ca"
    assert ca_key.stat().st_mode & 0o777 == 0o600
    authorized = (tmp_path / "keys" / "authorized_keys").read_text()
    ca = (tmp_path / "keys" / "transfer_ca.pub").read_text()
    assert ca.startswith(public_line(ca_key) + " ")
    assert authorized == (tmp_path / "keys" / "client_ed25519.pub").read_text() + (
        f"cert-authority {ca}"
    )
    assert authorized.startswith(public_line(client) + " ")


def test_rewriting_a_sky_keeps_its_keys(tmp_path):
    write_sky(SMALL, tmp_path)
    before = (tmp_path / "providers.yaml").read_text()
    client = (tmp_path / "keys" / "client_ed25519").read_bytes()
    write_sky(SMALL, tmp_path)
    assert (tmp_path / "providers.yaml").read_text() == before
    assert (tmp_path / "keys" / "client_ed25519").read_bytes() == client


def test_an_unreadable_key_file_is_named(tmp_path):
    (tmp_path / "broken").write_text("garbage")
    with pytest.raises(ValueError, match="broken: not a readable OpenSSH private key"):
        ensure_ed25519_key(tmp_path / "broken", "x")
