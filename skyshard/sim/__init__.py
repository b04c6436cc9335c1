"""The embedded demo sky: a seeded simulator writing config and captures in real formats."""

from skyshard.sim.params import DEFAULT_PARAMS, SkyParams
from skyshard.sim.sky import SkyManifest, write_sky

__all__ = ["DEFAULT_PARAMS", "SkyManifest", "SkyParams", "write_sky"]
