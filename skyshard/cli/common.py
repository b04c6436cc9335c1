"""What every `skyshard` command shares: the console, and loading the sky or opening the ledger
with a readable error."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from skyshard.config import ConfigError, Sky, load_sky, paths
from skyshard.ledger import Ledger, LedgerError
from skyshard.ledger.keys import KeyFileError
from skyshard.ledger.note import NoteError
from skyshard.sources.registry import check_sources

console = Console()


def load_or_fail(home: Path) -> Sky:
    """The sky at `home`, its sources checked as ingest would check them; else a clear exit."""
    try:
        sky = load_sky(home)
        check_sources(sky)
        return sky
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from None


def open_ledger() -> Ledger:
    """The ledger with its key and policy.yaml's cosigner quorum; else a clear exit."""
    try:
        return Ledger.open(paths.ledger_dir(), keys_dir=paths.keys_dir())
    except (ConfigError, KeyFileError, LedgerError, NoteError) as exc:
        raise click.ClickException(str(exc)) from exc
