"""Dagster resources: the DuckDB file and the dbt project, both configured from the environment."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource, DbtProject

from skyshard import db

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
        with db.connect(self.path, read_only=read_only) as con:
            yield con


def build_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "duckdb": DuckDBFile(path=dg.EnvVar("SKYSHARD_DUCKDB")),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
    }
