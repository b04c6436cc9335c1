"""A whole configured sky: providers, workloads expanded into shards, and policy, cross-checked."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from skyshard.config import paths
from skyshard.config.errors import ConfigError, ConfigProblem
from skyshard.config.loader import load_yaml_model
from skyshard.config.policy import PolicyFile
from skyshard.config.providers import Host, Provider, ProvidersFile
from skyshard.config.shards import Shard, expand_workloads, shard_count
from skyshard.config.workloads import Workload, WorkloadsFile

PROVIDERS_FILE = "providers.yaml"
WORKLOADS_FILE = "workloads.yaml"
POLICY_FILE = "policy.yaml"


@dataclass(frozen=True)
class Sky:
    """Everything skyshard knows from configuration."""

    home: Path
    providers: tuple[Provider, ...]
    workloads: tuple[Workload, ...]
    shards: tuple[Shard, ...]
    policy: PolicyFile

    @cached_property
    def hosts(self) -> dict[str, tuple[Provider, Host]]:
        return {h.id: (p, h) for p in self.providers for h in p.hosts}

    @cached_property
    def provider_by_id(self) -> dict[str, Provider]:
        return {p.id: p for p in self.providers}

    @cached_property
    def shard_by_id(self) -> dict[str, Shard]:
        return {s.id: s for s in self.shards}


def sky_policy() -> PolicyFile:
    """The sky's policy.yaml (defaults without one); unlike `current_sky()` it never
    generates the demo sky."""
    home = paths.skyshard_home() or paths.demo_home()
    return load_yaml_model(home / POLICY_FILE, PolicyFile, required=False)


def load_sky(home: Path) -> Sky:
    """Load and cross-check the three files in `home`; `policy.yaml` may be absent (defaults)."""
    providers_path = home / PROVIDERS_FILE
    workloads_path = home / WORKLOADS_FILE
    providers = load_yaml_model(providers_path, ProvidersFile).providers
    workloads = load_yaml_model(workloads_path, WorkloadsFile).workloads
    policy = load_yaml_model(home / POLICY_FILE, PolicyFile, required=False)
    _check_provider_ids(providers, providers_path)
    _check_workload_references(workloads, providers, workloads_path)
    _check_policy_references(policy, providers, home / POLICY_FILE)
    shards = expand_workloads(workloads, workloads_path)
    return Sky(
        home=home,
        providers=tuple(providers),
        workloads=tuple(workloads),
        shards=tuple(shards),
        policy=policy,
    )


def _check_provider_ids(providers: list[Provider], file: Path) -> None:
    problems = []
    seen_providers: set[str] = set()
    seen_hosts: set[str] = set()
    seen_sources: set[str] = set()
    for i, provider in enumerate(providers):
        if provider.id in seen_providers:
            problems.append(ConfigProblem(file, f"providers[{i}].id", provider.id, "a unique id"))
        seen_providers.add(provider.id)
        for j, host in enumerate(provider.hosts):
            if host.id in seen_hosts:
                problems.append(
                    ConfigProblem(
                        file, f"providers[{i}].hosts[{j}].id", host.id, "a unique host id"
                    )
                )
            seen_hosts.add(host.id)
        for j, source in enumerate(provider.sources):
            if source.id in seen_sources:
                problems.append(
                    ConfigProblem(
                        file,
                        f"providers[{i}].sources[{j}].id",
                        source.id,
                        "a source id unique in the sky",
                    )
                )
            seen_sources.add(source.id)
    if problems:
        raise ConfigError(problems)


def _check_workload_references(
    workloads: list[Workload], providers: list[Provider], file: Path
) -> None:
    """Hosts and providers named by workloads exist, and every shard fits somewhere allowed."""
    hosts = {h.id: (p, h) for p in providers for h in p.hosts}
    provider_ids = {p.id for p in providers}
    problems = []
    for i, workload in enumerate(workloads):
        for j, host_id in enumerate(workload.current_hosts):
            if host_id not in hosts:
                problems.append(
                    ConfigProblem(
                        file,
                        f"workloads[{i}].current_hosts[{j}]",
                        host_id,
                        "a host id from providers.yaml",
                    )
                )
        for j, provider_id in enumerate(workload.placement.allowed_providers or []):
            if provider_id not in provider_ids:
                problems.append(
                    ConfigProblem(
                        file,
                        f"workloads[{i}].placement.allowed_providers[{j}]",
                        provider_id,
                        f"one of the provider ids {sorted(provider_ids)}",
                    )
                )
    if problems:
        raise ConfigError(problems)
    for i, workload in enumerate(workloads):
        if not _allowed_hosts(workload, hosts):
            problems.append(
                ConfigProblem(
                    file,
                    f"workloads[{i}].placement",
                    workload.placement.model_dump(exclude_defaults=True),
                    f"at least one host that allows data class {workload.data_class!r}, "
                    "matches the allowed providers, regions and labels, "
                    "and has room for one shard",
                )
            )
    if problems:
        raise ConfigError(problems)


def _allowed_hosts(workload: Workload, hosts: dict[str, tuple[Provider, Host]]) -> list[str]:
    share = 1 / shard_count(workload)
    need = workload.resources.scaled(share)
    rules = workload.placement
    fitting = []
    for host_id, (provider, host) in hosts.items():
        if rules.allowed_providers is not None and provider.id not in rules.allowed_providers:
            continue
        if rules.allowed_regions is not None and host.region not in rules.allowed_regions:
            continue
        if workload.data_class not in provider.contract.allowed_data_classes:
            continue
        if any(host.labels.get(k) != v for k, v in rules.requires_labels.items()):
            continue
        cap = host.capacity
        if need.cpu > cap.cpu or need.mem_gb > cap.mem_gb or need.gpu > host.gpu_capacity:
            continue
        if need.net_mbps > cap.net_mbps:
            continue
        fitting.append(host_id)
    return fitting


def _check_policy_references(policy: PolicyFile, providers: list[Provider], file: Path) -> None:
    provider_ids = {p.id for p in providers}
    problems = []
    for provider_id in policy.payment:
        if provider_id not in provider_ids:
            problems.append(
                ConfigProblem(
                    file,
                    f"payment.{provider_id}",
                    provider_id,
                    f"one of the provider ids {sorted(provider_ids)}",
                )
            )
    for i, operator in enumerate(policy.operators):
        for j, grant in enumerate(operator.grants):
            if grant.provider != "*" and grant.provider not in provider_ids:
                problems.append(
                    ConfigProblem(
                        file,
                        f"operators[{i}].grants[{j}].provider",
                        grant.provider,
                        f"'*' or one of the provider ids {sorted(provider_ids)}",
                    )
                )
    for data_class, rule in policy.data_classes.items():
        for j, provider_id in enumerate(rule.allowed_providers or []):
            if provider_id not in provider_ids:
                problems.append(
                    ConfigProblem(
                        file,
                        f"data_classes.{data_class}.allowed_providers[{j}]",
                        provider_id,
                        f"one of the provider ids {sorted(provider_ids)}",
                    )
                )
    if problems:
        raise ConfigError(problems)
