"""Package exports imported on first use: importing one light submodule of a package then does
not import its heavy siblings (Prophet, pandas), which keeps the command line quick to start."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], object]:
    """A module-level `__getattr__` for `package`; `exports` maps each exported name to the
    submodule (relative to `package`) that defines it."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
