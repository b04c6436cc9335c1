"""The source registry: one list of adapters, and check-config refusing what ingest would."""

from __future__ import annotations

import copy

import pytest
from click.testing import CliRunner

from skyshard.cli.main import main
from skyshard.config import ConfigError, load_sky
from skyshard.sources.raw_tables import INGEST_TABLES
from skyshard.sources.registry import ADAPTERS, DATA_DIRS_ENV, check_sources, primary_table
from tests.config.conftest import PROVIDERS, WORKLOADS, write_home


@pytest.fixture
def documents():
    return copy.deepcopy(PROVIDERS), copy.deepcopy(WORKLOADS), None


def test_every_adapter_declares_its_type_tables_and_params():
    names = {t.name for t in INGEST_TABLES}
    for source_type, adapter in ADAPTERS.items():
        assert adapter.type == source_type
        assert adapter.tables and set(adapter.tables) <= names, source_type
        assert primary_table(source_type) == adapter.tables[0]
    assert primary_table("statuspage") == "incidents"
    assert primary_table("csv_prices") == "prices"


def sky_with_sources(home, documents, sources):
    providers, workloads, policy = documents
    providers["providers"][0]["sources"] = sources
    write_home(home, providers, workloads, policy)
    return load_sky(home)


def problems(home, documents, sources) -> dict[str, object]:
    with pytest.raises(ConfigError) as caught:
        check_sources(sky_with_sources(home, documents, sources))
    for problem in caught.value.problems:
        assert str(problem.file).endswith("providers.yaml")
    return {p.path: p for p in caught.value.problems}


def test_unknown_type_and_bad_params_are_named(tmp_path, documents):
    found = problems(
        tmp_path,
        documents,
        [
            {"id": "a", "type": "nagios", "url": "https://x.example"},
            {"id": "b", "type": "prometheus", "url": "https://x.example", "params": {"step": 0}},
            {"id": "c", "type": "csv_prices", "url": "https://x.example", "params": {"x": 1}},
        ],
    )
    assert found["providers[0].sources[0].type"].value == "nagios"
    assert "prometheus" in found["providers[0].sources[0].type"].expected
    assert found["providers[0].sources[1].params.step"].value == 0
    assert "providers[0].sources[1].params.queries" in found
    assert found["providers[0].sources[2].params.x"].value == 1


def test_file_urls_are_confined(tmp_path, documents, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SKYSHARD_DUCKDB", str(tmp_path / "db" / "skyshard.duckdb"))
    outside = tmp_path / "elsewhere"
    found = problems(
        home,
        documents,
        [
            {"id": "rel", "type": "csv_usage", "url": "file://captures/usage.csv"},
            {"id": "up", "type": "csv_usage", "url": f"file://{home}/../elsewhere/u.csv"},
            {"id": "abs", "type": "csv_usage", "url": (outside / "u.csv").as_uri()},
            {"id": "in", "type": "csv_usage", "url": (home / "captures/u.csv").as_uri()},
        ],
    )
    assert "file:///path" in found["providers[0].sources[0].url"].expected
    assert "SKYSHARD_HOME" in found["providers[0].sources[1].url"].expected
    assert "providers[0].sources[2].url" in found
    assert "providers[0].sources[3].url" not in found
    monkeypatch.setenv(DATA_DIRS_ENV, str(outside))
    check_sources(
        sky_with_sources(
            home, documents, [{"id": "abs", "type": "csv_usage", "url": (outside / "u").as_uri()}]
        )
    )


def test_component_regions_must_be_provider_regions(tmp_path, documents):
    found = problems(
        tmp_path,
        documents,
        [
            {
                "id": "status",
                "type": "statuspage",
                "url": "https://status.example",
                "params": {"component_regions": {"EC2 (Virginia)": "us-east-1", "S3": "mars-1"}},
            }
        ],
    )
    (problem,) = found.values()
    assert problem.path == "providers[0].sources[0].params.component_regions.S3"
    assert problem.value == "mars-1"


def test_yaml_with_a_bom_loads_and_invalid_utf8_is_named(tmp_path, documents):
    write_home(tmp_path, *documents)
    path = tmp_path / "providers.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_sky(tmp_path).providers
    path.write_bytes(path.read_bytes().replace(b"cloud", b"cl\xffud", 1))
    with pytest.raises(ConfigError) as caught:
        load_sky(tmp_path)
    (problem,) = caught.value.problems
    assert str(problem.file).endswith("providers.yaml")
    assert "UTF-8" in problem.expected and problem.line is not None


def test_simulated_provider_must_exist_in_the_simulated_sky(tmp_path, documents):
    found = problems(
        tmp_path,
        documents,
        [
            {
                "id": "sim",
                "type": "simulated",
                "url": (tmp_path / "captures" / "x").as_uri(),
                "params": {"provider": "nowhere"},
            }
        ],
    )
    (problem,) = found.values()
    assert problem.path == "providers[0].sources[0].params"
    assert "params.provider: got 'nowhere'" in problem.expected


def test_check_config_command_exits_non_zero_naming_file_field_and_value(tmp_path, documents):
    sky_with_sources(
        tmp_path,
        documents,
        [{"id": "prom", "type": "prometheus", "url": "file://captures/prom"}],
    )
    result = CliRunner().invoke(main, ["check-config", str(tmp_path)])
    assert result.exit_code != 0
    assert "providers.yaml" in result.output
    assert "providers[0].sources[0].url" in result.output
    assert "file://captures/prom" in result.output
    assert "providers[0].sources[0].params.queries" in result.output
