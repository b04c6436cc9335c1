"""The `ssh_probe` source over a real sshd: host capacity and shard usage from /proc, refusals
(changed or missing host key, no grant) failing that feed alone, and garbage probe output."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
import polars as pl
import pytest
import yaml

from skyshard.broker.from_config import broker_policy, host_accesses
from skyshard.config import paths
from skyshard.config.errors import ConfigError
from skyshard.config.providers import Source
from skyshard.config.sky import Sky, load_sky
from skyshard.db import connect
from skyshard.embedded_hosts import running_sky
from skyshard.ledger.log import read_entries
from skyshard.sim import SkyParams, write_sky
from skyshard.sources.base import FetchRequest, Parsed, PayloadError, Window
from skyshard.sources.ingest import collect_source, ingest_all
from skyshard.sources.ssh_probe import HEADER, SshProbeAdapter
from skyshard.transport.ssh import ConnectionPool, SshSettings
from skyshard.trust.events import EntryType
from tests.support.hosts import TestHost, start_host
from tests.support.sshd import free_tcp_port, require_sshd, write_ed25519_key

WINDOW = Window(datetime(2026, 11, 27), datetime(2026, 11, 28))
FAST_SSH = SshSettings(connect_timeout=5, command_timeout=60, attempts=2, backoff=0.05)
PROBE, USAGE = "probe-a", "usage-a"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestHost]:
    require_sshd()
    started = start_host(tmp_path_factory.mktemp("probe-host"), "host-a", "prov-a")
    yield started
    started.sshd.stop()


@pytest.fixture(scope="module")
def broker_key(host: TestHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("broker") / "client_ed25519"
    line = write_ed25519_key(key, "skyshard-broker")
    with (host.sshd.workdir / "authorized_keys").open("a") as handle:
        handle.write(line + "\n")
    return key


@dataclass
class Site:
    """One test's sky home: a provider whose one host is the sshd, with a probe and a CSV feed."""

    host: TestHost
    home: Path
    root: Path
    broker_key: Path
    usage_csv: Path

    def write(
        self,
        host_key: str | None = "pinned",
        actions: tuple[str, ...] = ("read_telemetry", "start_shard", "stop_shard"),
        probe: dict | None = None,
    ) -> Sky:
        entry = {
            "id": "host-a", "region": "local", "address": self.host.sshd.address,
            "port": self.host.sshd.port, "user": self.host.sshd.user,
            "capacity": {"cpu": 8, "mem_gb": 16}, "root": str(self.root),
        }  # fmt: skip
        if host_key:
            entry["host_key"] = self.host.sshd.host_key_line if host_key == "pinned" else host_key
        sources = [
            probe or {"id": PROBE, "type": "ssh_probe", "url": "ssh://"},
            {"id": USAGE, "type": "csv_usage", "url": self.usage_csv.as_uri()},
        ]
        providers = [{
            "id": "prov-a", "kind": "colo", "regions": ["local"],
            "contract": {"price_per_cpu_hour": 0.02}, "hosts": [entry], "sources": sources,
        }]  # fmt: skip
        workloads = [{
            "id": "kv", "resources": {"cpu": 1, "mem_gb": 1}, "shard_size": {"cpu": 1},
            "runtime": {"command": ["demo-kv"]}, "current_hosts": ["host-a"],
        }]  # fmt: skip
        policy = {
            "operators": [
                {"id": "broker", "grants": [{"provider": "prov-a", "actions": list(actions)}]}
            ]
        }
        for name, document in (
            ("providers.yaml", {"providers": providers}),
            ("workloads.yaml", {"workloads": workloads}),
            ("policy.yaml", policy),
        ):
            (self.home / name).write_text(yaml.safe_dump(document, sort_keys=False))
        return load_sky(self.home)

    def source(self, sky: Sky, source_id: str = PROBE):
        return next(s for s in sky.provider_by_id["prov-a"].sources if s.id == source_id)


@pytest.fixture
def site(host, broker_key, tmp_path, monkeypatch) -> Site:
    home = tmp_path / "sky"
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "client_ed25519").write_bytes(broker_key.read_bytes())
    (home / "keys" / "client_ed25519").chmod(0o600)
    root = host.root / tmp_path.name
    root.mkdir()
    usage_csv = tmp_path / "usage.csv"
    usage_csv.write_text("timestamp,shard_id,metric,value\n2026-11-27T10:00:00Z,kv-000,cpu,0.5\n")
    monkeypatch.setenv("SKYSHARD_HOME", str(home))
    site = Site(host, home, root, broker_key, usage_csv)
    site.write()
    return site


def meminfo_gib(field: str) -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / (1024 * 1024)
    raise AssertionError(field)


def values(frame: pl.DataFrame, key: str) -> dict[tuple[str, str], float]:
    return {(row[key], row["metric"]): row["value"] for row in frame.iter_rows(named=True)}


def test_probe_reports_host_capacity_and_a_running_shard(site) -> None:
    sky = load_sky(site.home)
    shard_id = sky.shards[0].id
    with ConnectionPool(FAST_SSH) as pool:
        access = host_accesses(sky, ["host-a"], pool, broker_policy(sky))["host-a"]
        runtime = access.runtime()
        port = free_tcp_port()
        runtime.start(shard_id, port, generation=1, isolation="signals")
        try:
            runtime.health(shard_id, port)
            collected = collect_source(site.source(sky), "prov-a", WINDOW)
        finally:
            runtime.clean(shard_id)
    assert collected.ok, collected.error
    assert collected.quarantine == []
    hosts = values(collected.frames["host_metrics"], "host_id")
    assert hosts[("host-a", "cpu_capacity")] == os.cpu_count()
    assert 0 <= hosts[("host-a", "cpu_free")] <= os.cpu_count()
    assert hosts[("host-a", "mem_gb_capacity")] == pytest.approx(meminfo_gib("MemTotal"))
    assert 0 < hosts[("host-a", "mem_gb_free")] <= meminfo_gib("MemTotal")
    shards = values(collected.frames["shard_usage"], "shard_id")
    assert set(shards) == {(shard_id, "cpu"), (shard_id, "mem_gb")}
    assert 0 <= shards[(shard_id, "cpu")] <= os.cpu_count()
    assert 0 < shards[(shard_id, "mem_gb")] < 1  # a small Python service's resident memory
    frame = collected.frames["shard_usage"]
    assert frame["provider_id"].to_list() == ["prov-a", "prov-a"]
    assert frame["ts"].n_unique() == 1


def test_stopped_shards_and_stale_pid_files_report_nothing(site) -> None:
    stale = site.root / "shards" / "kv-9"
    stale.mkdir(parents=True)
    (stale / "pid").write_text(str(os.getpid()))  # alive, but not this shard's process
    (site.root / "shards" / "kv-8").mkdir()
    (site.root / "shards" / "kv-8" / "pid").write_text("not a pid")
    collected = collect_source(site.source(load_sky(site.home)), "prov-a", WINDOW)
    assert collected.ok, collected.error
    assert collected.frames["shard_usage"].is_empty()
    assert collected.frames["host_metrics"].height == 4


def test_ingest_writes_the_probe_and_a_changed_host_key_fails_only_that_feed(site) -> None:
    database = paths.duckdb_path()
    outcomes = {o.source.id: o for o in ingest_all(load_sky(site.home), WINDOW, database)}
    assert outcomes[PROBE].ok and outcomes[PROBE].rows == 4, outcomes[PROBE].error
    other_key = write_ed25519_key(site.home / "other_host_key")
    sky = site.write(host_key=other_key)
    outcomes = {o.source.id: o for o in ingest_all(sky, WINDOW, database)}
    assert outcomes[USAGE].ok and outcomes[USAGE].rows == 1
    error = outcomes[PROBE].error
    assert error is not None and "host host-a" in error and "host key mismatch" in error
    assert f"ssh://127.0.0.1:{site.host.sshd.port}" in error
    with connect(database, read_only=True) as con:
        written = con.execute(
            "SELECT count(*) FROM raw.host_metrics WHERE host_id = 'host-a'"
        ).fetchone()[0]
    assert written == 4  # the first run's rows survive the failed one


def test_a_host_without_a_pinned_key_fails_the_feed_naming_the_field(site) -> None:
    sky = site.write(host_key=None)
    collected = collect_source(site.source(sky), "prov-a", WINDOW)
    assert not collected.ok and collected.frames == {}
    assert "host host-a" in collected.error
    assert "providers[0].hosts[0].host_key" in collected.error


def test_probing_without_the_grant_is_refused_and_recorded(site) -> None:
    sky = site.write(actions=("start_shard",))
    collected = collect_source(site.source(sky), "prov-a", WINDOW)
    assert not collected.ok
    assert "may not read_telemetry on provider 'prov-a'" in collected.error
    denied = list(read_entries(paths.ledger_dir(), EntryType.ACCESS_DENIED))
    assert [(e.payload["operator"], e.payload["action"]) for e in denied] == [
        ("broker", "read_telemetry")
    ]


def test_params_hosts_restricts_and_unknown_hosts_are_named(site) -> None:
    adapter = SshProbeAdapter()
    sky = site.write(probe={"id": PROBE, "type": "ssh_probe", "url": "ssh://",
                            "params": {"hosts": ["host-a"]}})  # fmt: skip
    assert [r.name for r in adapter.requests(site.source(sky), WINDOW)] == ["host-a"]
    sky = site.write(probe={"id": PROBE, "type": "ssh_probe", "url": "ssh://",
                            "params": {"hosts": ["host-z"]}})  # fmt: skip
    with pytest.raises(PayloadError, match=r"params.hosts\[0\]: got 'host-z'"):
        adapter.requests(site.source(sky), WINDOW)


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"id": "p", "type": "prometheus", "url": "ssh://"}, "sources[0].url: got 'ssh://'"),
        ({"id": "p", "type": "ssh_probe", "url": "file:///x"}, "sources[0].url: got 'file:///x'"),
    ],
)
def test_ssh_urls_belong_to_ssh_probe_only(site, probe, expected) -> None:
    with pytest.raises(ConfigError) as error:
        site.write(probe=probe)
    assert expected in str(error.value) and "providers.yaml" in str(error.value)


# parse() on its own: payloads as the fetcher wraps them, with hand-written probe output.

REQUEST = FetchRequest("host-a", "ssh://10.0.0.1:22")
STAT = "4242 (python3 (kv)) S 1 4242 4242 0 -1 4194560 1 0 0 0 {utime} {stime} 0 0 20 0 1 0 777"


def probe_output(shard_ticks: tuple[int, int] = (100, 150), extra: str = "") -> str:
    lines = [HEADER, "clk_tck 100", "MemTotal: 8388608 kB", "MemAvailable: 2097152 kB"]
    for number, (uptime, busy, idle, ticks) in enumerate(
        [(1000.0, 1000, 3000, shard_ticks[0]), (1001.0, 1100, 3100, shard_ticks[1])], start=1
    ):
        lines += [
            f"sample {number}",
            f"uptime {uptime} 1.0",
            f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0",
            "cpu0 0 0 0 0 0 0 0 0 0 0",
            "cpu1 0 0 0 0 0 0 0 0 0 0",
            f"shard kv-0 {STAT.format(utime=ticks, stime=0)}",
            "rss kv-0 VmRSS:\t  524288 kB",
        ]
    return "\n".join(lines) + "\n" + extra


def payload(output: str, host_id: str = "host-a") -> bytes:
    return orjson.dumps({"host_id": host_id, "probed_at": 1795860000.5, "output": output})


def parse(data: bytes) -> Parsed:
    source = Source(id=PROBE, type="ssh_probe", url="ssh://")
    adapter = SshProbeAdapter(sky=lambda: pytest.fail("parse must not load the sky"))
    return adapter.parse(REQUEST, data, source, "prov-a")


def test_parse_turns_two_samples_into_host_and_shard_rows() -> None:
    parsed = parse(payload(probe_output()))
    hosts = values(parsed.frames["host_metrics"], "host_id")
    assert hosts == {
        ("host-a", "cpu_capacity"): 2.0,
        ("host-a", "cpu_free"): 1.0,  # 100 idle of 200 ticks on 2 cores
        ("host-a", "mem_gb_capacity"): 8.0,
        ("host-a", "mem_gb_free"): 2.0,
    }
    shards = values(parsed.frames["shard_usage"], "shard_id")
    assert shards == {("kv-0", "cpu"): 0.5, ("kv-0", "mem_gb"): 0.5}  # 50 ticks in 1 s
    assert parsed.frames["shard_usage"]["ts"].to_list() == [datetime(2026, 11, 28, 10, 0)] * 2
    assert parsed.quarantine == []


def test_parse_sets_odd_lines_aside() -> None:
    extra = "shard ../etc 1 (x) S\nrss kv-1 VmRSS: many kB\nsomething else\n"
    parsed = parse(payload(probe_output(extra=extra)))
    assert parsed.frames["host_metrics"].height == 4
    assert [(q.target_table, q.raw_value) for q in parsed.quarantine] == [
        ("shard_usage", "shard ../etc 1 (x) S"),
        ("shard_usage", "rss kv-1 VmRSS: many kB"),
        ("host_metrics", "something else"),
    ]
    assert all(q.reason.startswith("host host-a: ") for q in parsed.quarantine)
    assert "invalid shard_id '../etc'" in parsed.quarantine[0].reason


def test_parse_skips_cpu_of_a_shard_restarted_between_samples() -> None:
    output = probe_output().replace(" 777\nrss", " 778\nrss", 1)  # other start time
    shards = values(parse(payload(output)).frames["shard_usage"], "shard_id")
    assert shards == {("kv-0", "mem_gb"): 0.5}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00garbage", "probe payload is not valid JSON"),
        (payload(probe_output(), host_id="host-b"), "not a JSON object for this host"),
        (payload("Welcome to host-a!\n" + probe_output()), "not ssh_probe output"),
        (payload(""), "not ssh_probe output"),
        (payload(HEADER).replace(b"1795860000.5", b"1e300"), "probed_at 1e+300 is not a time"),
        (payload(probe_output().split("sample 2")[0]), "needs samples 1 and 2"),
        (payload(probe_output().replace("uptime 1001.0", "uptime 999.0")), "uptime did not"),
        (payload(probe_output().replace("MemAvailable", "MemFree")), "lacks ['MemAvailable']"),
        (payload(probe_output().replace("cpu1 ", "gpu1 ")), None),
    ],
)
def test_parse_refuses_unusable_output_naming_the_host(data: bytes, reason: str | None) -> None:
    if reason is None:  # a renamed per-core line is only an odd line: one core fewer
        parsed = parse(data)
        assert values(parsed.frames["host_metrics"], "host_id")[("host-a", "cpu_capacity")] == 1
        assert [q.raw_value[:4] for q in parsed.quarantine] == ["gpu1", "gpu1"]
        return
    with pytest.raises(PayloadError) as error:
        parse(data)
    assert f"source {PROBE!r} (ssh://10.0.0.1:22): host host-a: " in str(error.value)
    assert reason in str(error.value)


def test_probe_reads_an_embedded_demo_host(tmp_path, monkeypatch) -> None:
    """The demo's asyncssh hosts run the same probe (through exec, not SFTP)."""
    home = tmp_path / "demo"
    write_sky(SkyParams(providers=1, hosts_per_provider=2, shards=2, days=7, seed=5), home)
    path = home / "providers.yaml"
    document = yaml.safe_load(path.read_text())
    provider = document["providers"][0]
    for host in provider["hosts"]:
        host["port"] = free_tcp_port()
    provider["sources"] = [{"id": PROBE, "type": "ssh_probe", "url": "ssh://"}]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    monkeypatch.setenv("SKYSHARD_HOME", str(home))
    sky = load_sky(home)
    source = sky.providers[0].sources[0]
    with running_sky(home):
        collected = collect_source(source, sky.providers[0].id, WINDOW)
    assert collected.ok, collected.error
    hosts = values(collected.frames["host_metrics"], "host_id")
    for host in sky.providers[0].hosts:
        assert hosts[(host.id, "cpu_capacity")] == os.cpu_count()
