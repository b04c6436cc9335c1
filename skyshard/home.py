"""Which sky to use: the user's `SKYSHARD_HOME`, or the embedded demo sky. The demo sky is live:
generated on first use on free loopback ports, and regenerated (same keys, same ports) whenever
its telemetry ends before the current hour, so there is always something ahead to act on."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from skyshard import paths
from skyshard.config.sky import PROVIDERS_FILE, Sky, load_sky

if TYPE_CHECKING:
    from skyshard.sim import SkyParams

DEMO_PARAMS_FILE = "demo_params.json"
PORT_BASE_ENV = "SKYSHARD_DEMO_PORT_BASE"


def resolve_home() -> Path:
    """`SKYSHARD_HOME` if set; otherwise the demo sky, generated if missing."""
    home = paths.skyshard_home()
    if home is not None:
        return home
    home = paths.demo_home()
    if not (home / PROVIDERS_FILE).exists():
        refresh_demo_sky()
    return home


def current_sky() -> Sky:
    return load_sky(resolve_home())


def _stored_params(home: Path) -> SkyParams | None:
    from skyshard.sim import SkyParams

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
    from skyshard.sim import DEFAULT_PARAMS
    from skyshard.sim.ports import free_port_block

    stored = _stored_params(home)
    port_base = _port_base_override()
    if port_base is None:
        port_base = stored.port_base if stored else free_port_block(DEFAULT_PARAMS.ports)
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    return replace(DEFAULT_PARAMS, end=end, port_base=port_base)


def refresh_demo_sky(now: datetime | None = None) -> Path | None:
    """Regenerate the demo sky if its telemetry ends before the current hour or its ports were
    changed; returns its home. A user's sky (SKYSHARD_HOME) is never touched: None."""
    if paths.skyshard_home() is not None:
        return None
    from skyshard.sim import write_sky

    home = paths.demo_home()
    wanted = demo_params(home, now or datetime.now(UTC))
    if _stored_params(home) != wanted:
        write_sky(wanted, home)
        (home / DEMO_PARAMS_FILE).write_text(json.dumps(wanted.to_json()))
    return home
