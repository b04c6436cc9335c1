from __future__ import annotations

import polars as pl
import pytest

from skyshard.config import ConfigError, load_sky
from skyshard.config.sky_tables import host_frame
from tests.config.conftest import write_home


def test_valid_home_loads_and_expands_shards(tmp_path):
    sky = load_sky(write_home(tmp_path))
    assert [p.id for p in sky.providers] == ["aws", "colo"]
    web = [s for s in sky.shards if s.workload_id == "web"]
    # 16 cpu / 64 GiB / 400 GiB state with shard_size 2 cpu -> 8 shards of 2 / 8 / 50.
    assert len(web) == 8
    assert {(s.resources.cpu, s.resources.mem_gb, s.state_gb) for s in web} == {(2, 8, 50)}
    assert [s.id for s in web][:2] == ["web-000", "web-001"]
    assert [s.current_host for s in web][:3] == ["aws-h1", "colo-h1", "aws-h1"]
    # Each web shard depends on both db shards with the workload's latency limit.
    assert {(d.shard_id, d.max_latency_ms) for d in web[0].depends_on} == {
        ("db-000", 20),
        ("db-001", 20),
    }


def test_policy_file_is_optional(tmp_path):
    sky = load_sky(write_home(tmp_path, policy=None))
    assert sky.policy.forecast.horizon_hours == 24


def _error(tmp_path, providers=None, workloads=None, policy=None, documents=None) -> ConfigError:
    p, w, pol = documents
    home = write_home(tmp_path, providers or p, workloads or w, policy or pol)
    with pytest.raises(ConfigError) as caught:
        load_sky(home)
    return caught.value


def test_unknown_key_names_file_path_value_and_line(tmp_path, documents):
    providers, _, _ = documents
    providers["providers"][0]["hosts"][0]["capacity"]["cpus"] = 4
    error = _error(tmp_path, providers=providers, documents=documents)
    text = str(error)
    assert "providers.yaml" in text
    assert "providers[0].hosts[0].capacity.cpus" in text
    assert "unknown keys are rejected" in text
    assert error.problems[0].line is not None


def test_wrong_type_and_range(tmp_path, documents):
    providers, _, _ = documents
    providers["providers"][0]["hosts"][0]["port"] = 70000
    providers["providers"][1]["hosts"][0]["capacity"]["cpu"] = -1
    error = _error(tmp_path, providers=providers, documents=documents)
    paths = {p.path for p in error.problems}
    assert "providers[0].hosts[0].port" in paths
    assert "providers[1].hosts[0].capacity.cpu" in paths
    port = next(p for p in error.problems if p.path.endswith("port"))
    assert port.value == 70000
    assert "65535" in port.expected


def test_unsafe_ids_rejected(tmp_path, documents):
    providers, _, _ = documents
    providers["providers"][0]["hosts"][0]["id"] = "../etc;rm"
    error = _error(tmp_path, providers=providers, documents=documents)
    assert error.problems[0].path == "providers[0].hosts[0].id"
    assert error.problems[0].value == "../etc;rm"


def test_bad_host_key_and_url(tmp_path, documents):
    providers, _, _ = documents
    providers["providers"][0]["hosts"][0]["host_key"] = "not a key"
    providers["providers"][0]["sources"] = [
        {"id": "prom", "type": "prometheus", "url": "ftp://example.org"}
    ]
    error = _error(tmp_path, providers=providers, documents=documents)
    paths = {p.path for p in error.problems}
    assert {"providers[0].hosts[0].host_key", "providers[0].sources[0].url"} <= paths


def test_missing_file(tmp_path):
    write_home(tmp_path, workloads=None)
    with pytest.raises(ConfigError, match=r"workloads.yaml.*the file to exist"):
        load_sky(tmp_path)


def test_yaml_syntax_error_has_line(tmp_path, documents):
    write_home(tmp_path)
    (tmp_path / "policy.yaml").write_text("planning:\n  max_moves_per_cycle: [1, 2\n")
    with pytest.raises(ConfigError) as caught:
        load_sky(tmp_path)
    problem = caught.value.problems[0]
    assert str(problem.file).endswith("policy.yaml")
    assert problem.line is not None
    assert problem.expected == "valid YAML"


def test_unknown_current_host(tmp_path, documents):
    _, workloads, _ = documents
    workloads["workloads"][1]["current_hosts"] = ["aws-h1", "gcp-h9"]
    error = _error(tmp_path, workloads=workloads, documents=documents)
    assert error.problems[0].path == "workloads[1].current_hosts[1]"
    assert error.problems[0].value == "gcp-h9"


def test_unknown_dependency(tmp_path, documents):
    _, workloads, _ = documents
    workloads["workloads"][1]["depends_on"][0]["workload"] = "cache"
    error = _error(tmp_path, workloads=workloads, documents=documents)
    assert error.problems[0].path == "workloads[1].depends_on[0].workload"
    assert error.problems[0].value == "cache"


def test_dependency_cycle(tmp_path, documents):
    _, workloads, _ = documents
    workloads["workloads"][0]["depends_on"] = [{"workload": "web", "max_latency_ms": 5}]
    error = _error(tmp_path, workloads=workloads, documents=documents)
    assert "acyclic" in error.problems[0].expected
    assert error.problems[0].value in ("db -> web -> db", "web -> db -> web")


def test_self_dependency(tmp_path, documents):
    _, workloads, _ = documents
    workloads["workloads"][0]["depends_on"] = [{"workload": "db", "max_latency_ms": 5}]
    error = _error(tmp_path, workloads=workloads, documents=documents)
    assert "cannot depend on itself" in error.problems[0].expected


def test_impossible_placement(tmp_path, documents):
    _, workloads, _ = documents
    # Restricted data is allowed by neither provider's contract.
    workloads["workloads"][0]["data_class"] = "restricted"
    error = _error(tmp_path, workloads=workloads, documents=documents)
    assert error.problems[0].path == "workloads[0].placement"
    assert "restricted" in error.problems[0].expected


def test_shard_larger_than_every_host(tmp_path, documents):
    _, workloads, _ = documents
    workloads["workloads"][0]["resources"] = {"cpu": 64, "mem_gb": 16}
    workloads["workloads"][0]["shard_size"] = {"cpu": 64}
    error = _error(tmp_path, workloads=workloads, documents=documents)
    assert error.problems[0].path == "workloads[0].placement"


def test_shard_size_needs_exactly_one_resource(tmp_path, documents):
    _, workloads, _ = documents
    workloads["workloads"][0]["shard_size"] = {"cpu": 2, "mem_gb": 8}
    error = _error(tmp_path, workloads=workloads, documents=documents)
    assert error.problems[0].path == "workloads[0].shard_size"


def test_duplicate_host_ids(tmp_path, documents):
    providers, _, _ = documents
    providers["providers"][1]["hosts"][0]["id"] = "aws-h1"
    error = _error(tmp_path, providers=providers, documents=documents)
    assert error.problems[0].path == "providers[1].hosts[0].id"


def test_host_region_must_be_declared(tmp_path, documents):
    providers, _, _ = documents
    providers["providers"][1]["hosts"][0]["region"] = "ams"
    error = _error(tmp_path, providers=providers, documents=documents)
    assert error.problems[0].path == "providers[1]"
    assert "ams" in error.problems[0].expected


def test_policy_references_unknown_provider(tmp_path, documents):
    _, _, policy = documents
    policy["payment"]["gcp"] = {"monthly_budget": 10}
    policy["operators"][0]["grants"].append({"provider": "azure", "actions": ["stop_shard"]})
    error = _error(tmp_path, policy=policy, documents=documents)
    assert {p.path for p in error.problems} == {"payment.gcp", "operators[0].grants[1].provider"}


def test_unknown_action_in_grant(tmp_path, documents):
    _, _, policy = documents
    policy["operators"][0]["grants"][0]["actions"] = ["format_disk"]
    error = _error(tmp_path, policy=policy, documents=documents)
    assert error.problems[0].path == "operators[0].grants[0].actions[0]"
    assert error.problems[0].value == "format_disk"


def test_gpu_devices_reach_the_placement_input(tmp_path, documents):
    providers, _, _ = documents
    providers["providers"][0]["hosts"][0]["gpus"] = {"count": 8, "model": "h100", "memory_gb": 80}
    sky = load_sky(write_home(tmp_path, providers, documents[1], documents[2]))
    host = sky.providers[0].hosts[0]
    assert (host.gpu_capacity, host.gpus.model, host.gpus.memory_gb) == (8, "h100", 80)
    frame = host_frame(sky).filter(pl.col("host_id") == "aws-h1")
    assert frame.select("gpu", "gpu_devices", "gpu_model").row(0) == (8.0, 8, "h100")
    old = host_frame(sky).filter(pl.col("host_id") == "colo-h1")
    assert old.select("gpu", "gpu_devices").row(0) == (0.0, None)


def test_gpu_capacity_disagreeing_with_devices_is_named(tmp_path, documents):
    providers, _, _ = documents
    host = providers["providers"][0]["hosts"][0]
    host["gpus"] = {"count": 8, "model": "h100"}
    host["capacity"]["gpu"] = 4
    error = _error(tmp_path, providers=providers, documents=documents)
    (problem,) = error.problems
    assert problem.path == "providers[0].hosts[0]"
    assert "capacity.gpu = 4 disagrees with gpus.count = 8" in str(error)
