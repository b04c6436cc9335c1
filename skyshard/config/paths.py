"""Where skyshard keeps its files: one place that reads the documented environment variables."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DUCKDB = Path("data/skyshard.duckdb")


def skyshard_home() -> Path | None:
    """The user's config folder (`SKYSHARD_HOME`), or None for the embedded demo sky."""
    value = os.environ.get("SKYSHARD_HOME")
    return Path(value) if value else None


def duckdb_path() -> Path:
    """The one DuckDB file every writer and reader shares (`SKYSHARD_DUCKDB`)."""
    return Path(os.environ.get("SKYSHARD_DUCKDB") or DEFAULT_DUCKDB).absolute()


def data_dir() -> Path:
    """Working data folder: beside the DuckDB file (captures, ledger, demo keys)."""
    return duckdb_path().parent


def ledger_dir() -> Path:
    """Folder of the trust ledger (`SKYSHARD_LEDGER_DIR`, default `<data>/ledger`)."""
    value = os.environ.get("SKYSHARD_LEDGER_DIR")
    return Path(value) if value else data_dir() / "ledger"


def ledger_client_dir(ledger: Path) -> Path:
    """What this machine remembers of the ledger at `ledger` (pinned genesis key, latest
    verified checkpoint): `SKYSHARD_LEDGER_CLIENT_DIR`, default a sibling `<ledger>.client`
    folder, outside the folder it vouches for."""
    value = os.environ.get("SKYSHARD_LEDGER_CLIENT_DIR")
    return Path(value) if value else Path(ledger).with_name(Path(ledger).name + ".client")


def demo_home() -> Path:
    """Folder of the embedded demo sky (beside the DuckDB file), used without SKYSHARD_HOME."""
    return data_dir() / "demo_sky"


def keys_dir() -> Path:
    """Key folder of the sky in use: `$SKYSHARD_HOME/keys`, or the demo sky's `keys/`."""
    return (skyshard_home() or demo_home()) / "keys"
