"""The embedded demo sky is live: its telemetry ends at the current hour, regenerated with the
same keys and ports when the hour moves on, on ports found free (or configured)."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from skyshard.sim.home import DEMO_PARAMS_FILE, PORT_BASE_ENV, refresh_demo_sky
from skyshard.sim.ports import free_port_block

NOW = datetime(2027, 3, 1, 9, 41, tzinfo=UTC)


@pytest.fixture
def demo_env(tmp_path, monkeypatch):
    monkeypatch.delenv("SKYSHARD_HOME", raising=False)
    monkeypatch.delenv(PORT_BASE_ENV, raising=False)
    monkeypatch.setenv("SKYSHARD_DUCKDB", str(tmp_path / "skyshard.duckdb"))
    return tmp_path / "demo_sky"


def host_ports(home) -> list[int]:
    document = yaml.safe_load((home / "providers.yaml").read_text())
    return sorted(h["port"] for p in document["providers"] for h in p["hosts"])


def test_demo_sky_follows_the_clock_keeping_keys_and_ports(demo_env):
    home = refresh_demo_sky(NOW)
    assert home == demo_env
    params = json.loads((home / DEMO_PARAMS_FILE).read_text())
    assert params["end"] == "2027-03-01T09:00:00"
    ports = host_ports(home)
    assert ports == list(range(ports[0], ports[0] + len(ports)))
    keys = {p: p.read_bytes() for p in (home / "keys").rglob("*") if p.is_file()}
    captures = sorted((home / "captures").rglob("*.json"))[0]
    written = captures.stat().st_mtime_ns

    refresh_demo_sky(NOW + timedelta(minutes=15))  # same hour: nothing regenerated
    assert captures.stat().st_mtime_ns == written

    refresh_demo_sky(NOW + timedelta(hours=2))
    params = json.loads((home / DEMO_PARAMS_FILE).read_text())
    assert params["end"] == "2027-03-01T11:00:00"
    assert captures.stat().st_mtime_ns != written
    assert host_ports(home) == ports
    assert {p: p.read_bytes() for p in keys} == keys


def test_demo_ports_are_free_or_configured(demo_env, monkeypatch):
    with socket.socket() as taken:
        base = free_port_block(10, start=24000)
        taken.bind(("127.0.0.1", base + 3))
        assert free_port_block(10, start=base) >= base + 100
    monkeypatch.setenv(PORT_BASE_ENV, "31000")
    home = refresh_demo_sky(NOW)
    assert host_ports(home)[0] == 31000
    monkeypatch.setenv(PORT_BASE_ENV, "22x")
    with pytest.raises(ValueError, match=f"{PORT_BASE_ENV}='22x'"):
        refresh_demo_sky(NOW)


def test_a_users_sky_is_never_regenerated(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYSHARD_HOME", str(tmp_path / "mine"))
    assert refresh_demo_sky(NOW) is None
    assert not (tmp_path / "mine").exists()
