"""What every `skyshard` command shares: the console and loading the sky with a readable error."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from skyshard.config import ConfigError, Sky, load_sky

console = Console()


def load_or_fail(home: Path) -> Sky:
    try:
        return load_sky(home)
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from None
