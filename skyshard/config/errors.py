"""Configuration errors naming the file, the YAML path, the bad value and what was expected."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in one file."""

    file: Path | str
    path: str
    value: object
    expected: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        shown = repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return f"{where}: {self.path or '<root>'}: got {shown}: expected {self.expected}"


class ConfigError(ValueError):
    """Raised when configuration is invalid; carries every problem found, not only the first."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def yaml_path(loc: Sequence[str | int]) -> str:
    """Render a pydantic location tuple as a YAML path such as `providers[2].hosts[0].port`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
