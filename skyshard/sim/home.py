"""Which sky to use: the user's `SKYSHARD_HOME`, or the embedded demo sky, which this package
generates (so `config` never imports the simulator). The demo sky is live: generated on first
use on free loopback ports, and regenerated (same keys, same ports) whenever its telemetry ends
before the current hour, so there is always something ahead to act on."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from skyshard.config import paths
from skyshard.config.sky import PROVIDERS_FILE, Sky, load_sky
from skyshard.sim.params import DEFAULT_PARAMS, SkyParams
from skyshard.sim.ports import free_port_block
from skyshard.sim.sky import write_sky

DEMO_PARAMS_FILE = "demo_params.json"
PORT_BASE_ENV = "SKYSHARD_DEMO_PORT_BASE"


def resolve_home() -> Path:
    """`SKYSHARD_HOME` if set; otherwise the demo sky."""
    return paths.skyshard_home() or demo_sky_home()


def demo_sky_home() -> Path:
    """The embedded demo sky's folder, generated if missing."""
    home = paths.demo_home()
    if not (home / PROVIDERS_FILE).exists():
        _write_demo_sky(home, datetime.now(UTC))
    return home


def current_sky() -> Sky:
    return load_sky(resolve_home())


def _stored_params(home: Path) -> SkyParams | None:
    path = home / DEMO_PARAMS_FILE
    if not path.exists() or not (home / PROVIDERS_FILE).exists():
        return None
    return SkyParams.from_json(json.loads(path.read_text()))


def _port_base_override() -> int | None:
    value = os.environ.get(PORT_BASE_ENV)
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"environment variable {PORT_BASE_ENV}={value!r}: expected a port number")
    return int(value)


def demo_params(home: Path, now: datetime) -> SkyParams:
    """The demo sky's parameters at `now`: telemetry up to the current hour; ports from
    SKYSHARD_DEMO_PORT_BASE, else those already chosen, else the first free block."""
    stored = _stored_params(home)
    port_base = _port_base_override()
    if port_base is None:
        port_base = stored.port_base if stored else free_port_block(DEFAULT_PARAMS.ports)
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    return replace(DEFAULT_PARAMS, end=end, port_base=port_base)


def _write_demo_sky(home: Path, now: datetime) -> None:
    wanted = demo_params(home, now)
    if _stored_params(home) != wanted:
        write_sky(wanted, home)
        (home / DEMO_PARAMS_FILE).write_text(json.dumps(wanted.to_json()))


def refresh_demo_sky(now: datetime | None = None) -> Path | None:
    """Regenerate the demo sky if its telemetry ends before the current hour or its ports were
    changed; returns its home. A user's sky (SKYSHARD_HOME) is never touched: None."""
    if paths.skyshard_home() is not None:
        return None
    home = paths.demo_home()
    _write_demo_sky(home, now or datetime.now(UTC))
    return home
