"""Which sky to use: the user's `SKYSHARD_HOME`, or the embedded demo sky generated on first use."""

from __future__ import annotations

from pathlib import Path

from skyshard.config import paths
from skyshard.config.sky import PROVIDERS_FILE, Sky, load_sky


def resolve_home() -> Path:
    """`SKYSHARD_HOME` if set; otherwise the demo sky, generated (deterministically) if missing."""
    home = paths.skyshard_home()
    if home is not None:
        return home
    home = paths.demo_home()
    if not (home / PROVIDERS_FILE).exists():
        from skyshard.sim import DEFAULT_PARAMS, write_sky

        write_sky(DEFAULT_PARAMS, home)
    return home


def current_sky() -> Sky:
    return load_sky(resolve_home())
