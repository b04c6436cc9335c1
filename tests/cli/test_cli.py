"""The `skyshard` command line: output formats, required identity, and errors on bad input
that name the file, the field and the value (exit code non-zero, nothing stored)."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from skyshard.cli.main import LAZY_COMMANDS, main
from tests.config.conftest import POLICY, PROVIDERS, write_home

ROOT = Path(__file__).resolve().parents[2]
WIDE = {f"column_{i:02d}": f"value number {i}" for i in range(30)}


@pytest.fixture
def database(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "skyshard.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema plan")
        con.execute("create table plan.t (id integer, name varchar, note varchar, x double)")
        con.execute(
            "insert into plan.t values (1, 'a', 'pipe | and, comma', 0.5), (2, 'b', null, null)"
        )
        columns = ", ".join(f"'{v}' as {k}" for k, v in WIDE.items())
        con.execute(f"create table plan.wide as select {columns}")
    monkeypatch.setenv("SKYSHARD_DUCKDB", str(path))
    return path


def run(*args: str, **env: str | None) -> object:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_sql_formats(database):
    query = "select * from plan.t order by id"
    table = run("sql", query)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["id", "name", "note", "x"]
    assert lines[2].split() == ["1", "a", "pipe", "|", "and,", "comma", "0.5"]
    parsed = list(csv.reader(io.StringIO(run("sql", query, "--format", "csv").output)))
    assert parsed == [
        ["id", "name", "note", "x"],
        ["1", "a", "pipe | and, comma", "0.5"],
        ["2", "b", "", ""],
    ]
    records = json.loads(run("sql", query, "--format", "json").output)
    assert records == [
        {"id": 1, "name": "a", "note": "pipe | and, comma", "x": 0.5},
        {"id": 2, "name": "b", "note": None, "x": None},
    ]
    markdown = run("sql", query, "--format", "markdown").output.splitlines()
    assert markdown[0] == "| id | name | note | x |"
    assert markdown[2] == "| 1 | a | pipe \\| and, comma | 0.5 |"


def test_a_wide_result_is_never_cut(database):
    piped = run("sql", "select * from plan.wide").output
    for name, value in WIDE.items():
        assert name in piped and value in piped
    assert "…" not in piped and "..." not in piped
    assert len(piped.splitlines()) == 3  # header, rule, the row: one line each when piped


def test_a_cut_at_the_limit_is_reported(database):
    result = CliRunner().invoke(main, ["sql", "select * from range(5)", "--limit", "2"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[2:] == ["0", "1"]
    assert "first 2 rows shown" in result.stderr
    everything = run("sql", "select * from range(5)", "--limit", "0", "--format", "csv")
    assert everything.output.split() == ["range", "0", "1", "2", "3", "4"]


def test_sql_errors_name_the_file_and_the_problem(database, tmp_path, monkeypatch):
    bad = CliRunner().invoke(main, ["sql", "select nope from plan.t"])
    assert bad.exit_code == 1
    assert str(database) in bad.output and '"nope"' in bad.output
    missing = tmp_path / "missing.duckdb"
    monkeypatch.setenv("SKYSHARD_DUCKDB", str(missing))
    absent = CliRunner().invoke(main, ["sql", "select 1"])
    assert absent.exit_code == 1 and str(missing) in absent.output
    assert not missing.exists()
    unknown = CliRunner().invoke(main, ["sql", "select 1", "--format", "xml"])
    assert unknown.exit_code == 2 and "'xml'" in unknown.output


@pytest.fixture
def bad_home(tmp_path) -> Path:
    providers = copy.deepcopy(PROVIDERS)
    providers["providers"][0]["hosts"][0]["capacity"]["cpu"] = "lots"
    return write_home(tmp_path / "bad", providers=providers)


@pytest.mark.parametrize("command", [["check-config"], ["ingest"], ["demo"], ["whatif", "x-1"]])
def test_bad_config_is_refused_naming_file_field_and_value(command, bad_home, tmp_path):
    database = tmp_path / "untouched.duckdb"
    result = CliRunner().invoke(
        main, command, env={"SKYSHARD_HOME": str(bad_home), "SKYSHARD_DUCKDB": str(database)}
    )
    assert result.exit_code == 1, result.output
    assert "providers.yaml" in result.output
    assert "cpu" in result.output and "'lots'" in result.output
    assert not database.exists()


def test_check_config_names_a_placement_rule_no_family_reads(tmp_path):
    policy = {**copy.deepcopy(POLICY), "placement_rules": [{"rule": "max_gpus", "limit": 1}]}
    home = write_home(tmp_path / "home", policy=policy)
    result = CliRunner().invoke(main, ["check-config", str(home)])
    assert result.exit_code == 1, result.output
    assert "policy.yaml" in result.output and "placement_rules[0].rule" in result.output
    assert "'max_gpus'" in result.output


def test_whatif_before_any_planning_names_the_file(tmp_path):
    home = write_home(tmp_path / "home")
    database = tmp_path / "empty.duckdb"
    duckdb.connect(str(database)).close()
    result = CliRunner().invoke(
        main,
        ["whatif", "ghost-9"],
        env={"SKYSHARD_HOME": str(home), "SKYSHARD_DUCKDB": str(database)},
    )
    assert result.exit_code == 1
    assert str(database) in result.output and "run the planning cycle first" in result.output


def test_lazy_commands_show_their_own_help():
    import click

    context = click.Context(main)
    for name, (_, short_help) in LAZY_COMMANDS.items():
        command = main.get_command(context, name)
        assert command.name == name
        assert command.get_short_help_str(200) == short_help


def test_help_and_version_import_nothing_heavy():
    code = (
        "import sys; from skyshard.cli.main import main\n"
        "try: main(['--help'])\n"
        "except SystemExit: pass\n"
        "heavy = {'duckdb', 'polars', 'pandas', 'dagster', 'rich', 'pydantic'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.splitlines()[-1] == "[]"
