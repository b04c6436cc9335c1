"""Configuration: the schema of the three YAML files and how a whole sky is loaded."""

from skyshard.config.errors import ConfigError, ConfigProblem
from skyshard.config.sky import Sky, load_sky

__all__ = ["ConfigError", "ConfigProblem", "Sky", "load_sky"]
