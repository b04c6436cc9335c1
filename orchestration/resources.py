"""Dagster resources: the sky, the trust ledger, the DuckDB file and the dbt project, each
configured from the environment (`dg.EnvVar`)."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource, DbtProject

from skyshard import db
from skyshard.config.sky import Sky, load_sky
from skyshard.ledger import Ledger
from skyshard.sim.home import demo_sky_home
from skyshard.storage.snapshots import refresh

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
DUCKDB_WRITER_POOL = "duckdb_writer"
"""Every asset that writes DuckDB runs in this pool; dagster.yaml limits it to one at a time."""

# dbt installed beside this interpreter (the project's virtualenv), whatever PATH says.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class DuckDBFile(dg.ConfigurableResource):
    """The one DuckDB file (`SKYSHARD_DUCKDB`); hands out short-lived connections."""

    path: str

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short connection; after a write, a read snapshot is published for the readers
        (`skyshard.storage.snapshots.refresh`: never waits, at most once a second)."""
        with db.connect(self.path, read_only=read_only) as con:
            yield con
        if not read_only:
            refresh(self.path)


class SkyResource(dg.ConfigurableResource):
    """The configured sky: the folder `home` (`SKYSHARD_HOME`), or the embedded demo sky when
    `home` is empty. Read on every use, like the YAML files it comes from."""

    home: str = ""

    def load(self) -> Sky:
        return load_sky(Path(self.home) if self.home else demo_sky_home())


class LedgerResource(dg.ConfigurableResource):
    """The trust ledger in `directory` (`SKYSHARD_LEDGER_DIR`; empty: `ledger/` beside the
    DuckDB file), signed with the sky's ledger key."""

    directory: str = ""

    def open(self) -> Ledger:
        return Ledger.open(Path(self.directory) if self.directory else None)


def _optional_env(name: str) -> str | dg.EnvVar:
    # An unset variable selects the documented default instead of failing every run.
    return dg.EnvVar(name) if os.environ.get(name) else ""


def build_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "sky": SkyResource(home=_optional_env("SKYSHARD_HOME")),
        "ledger": LedgerResource(directory=_optional_env("SKYSHARD_LEDGER_DIR")),
        "duckdb": DuckDBFile(path=dg.EnvVar("SKYSHARD_DUCKDB")),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
    }
