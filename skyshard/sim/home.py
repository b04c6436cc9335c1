"""Which sky to use: the user's `SKYSHARD_HOME`, or the embedded demo sky, which this package
generates on first use (so `config` never imports the simulator)."""

from __future__ import annotations

from pathlib import Path

from skyshard.config import paths
from skyshard.config.sky import PROVIDERS_FILE, Sky, load_sky
from skyshard.sim.params import DEFAULT_PARAMS
from skyshard.sim.sky import write_sky


def resolve_home() -> Path:
    """`SKYSHARD_HOME` if set; otherwise the demo sky."""
    return paths.skyshard_home() or demo_sky_home()


def demo_sky_home() -> Path:
    """The embedded demo sky's folder, generated (deterministically) if missing."""
    home = paths.demo_home()
    if not (home / PROVIDERS_FILE).exists():
        write_sky(DEFAULT_PARAMS, home)
    return home


def current_sky() -> Sky:
    return load_sky(resolve_home())
