"""Configuration: the schema of the three YAML files and how a whole sky is loaded."""

from skyshard.lazy import lazy_exports

EXPORTS = {
    "ConfigError": "errors",
    "ConfigProblem": "errors",
    "Sky": "sky",
    "load_sky": "sky",
}
__getattr__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)
