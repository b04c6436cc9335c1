"""Host capacity and shard usage read over SSH from `/proc` (source type `ssh_probe`).

Agentless: one constant shell script samples `/proc/stat`, `/proc/uptime` and each running
shard's `/proc/<pid>/stat` twice, one second apart, plus `/proc/meminfo`. The only argument
is the host's validated root (quoted), whose `shards/<id>/pid` files name the shard processes;
a pid counts only while its command line names that shard's state folder (no pid reuse).

The url `ssh://` means the provider's own hosts from `providers.yaml` (`params.hosts` may
restrict them); each host is one request, reached with its pinned host key and the broker's
client key, as the broker operator holding `read_telemetry` on the provider. A probe measures
now: the ingestion window is not used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import paramiko
from pydantic import BaseModel, ConfigDict

from skyshard.broker.from_config import broker_policy, host_accesses
from skyshard.config.errors import ConfigError
from skyshard.config.providers import Host, Provider, Source
from skyshard.config.sky import Sky
from skyshard.sim.home import current_sky
from skyshard.sources.base import FetchRequest, Parsed, PayloadError, QuarantinedRow, Window
from skyshard.sources.frames import parse_params, rows_frame
from skyshard.transport import validate
from skyshard.transport.access import AccessDenied, Denial
from skyshard.transport.commands import RemoteCommand, RemotePath, run_script
from skyshard.transport.ssh import ConnectionPool, SshError, SshSettings
from skyshard.transport.validate import ValidationError
from skyshard.trust.events import record_access_denied

ACTION = "read_telemetry"
SAMPLE_GAP_S = 1
HEADER = "skyshard-probe 1"
KIB_PER_GIB = 1024 * 1024
# /proc/stat cpu columns counted as time: user nice system idle iowait irq softirq steal
# (guest and guest_nice are already inside user and nice).
TIME_COLUMNS = 8
IDLE_COLUMNS = (3, 4)  # idle, iowait
# Fields of /proc/<pid>/stat after the `(comm)` field, counted from 0 = state (field 3).
STATE, UTIME, STIME, STARTTIME = 0, 11, 12, 19

PROBE_SCRIPT = f"""\
root=$1
sample() {{
  echo "sample $1"
  echo "uptime $(cat /proc/uptime)"
  grep '^cpu' /proc/stat
  for pidfile in "$root"/shards/*/pid; do
    [ -f "$pidfile" ] || continue
    dir=${{pidfile%/pid}}
    pid=$(cat "$pidfile" 2>/dev/null)
    case $pid in ''|*[!0-9]*) continue ;; esac
    case $( {{ tr '\\000' ' ' < "/proc/$pid/cmdline"; }} 2>/dev/null ) in
      *"$dir/state"*) ;;
      *) continue ;;
    esac
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    echo "shard ${{dir##*/}} $stat"
    echo "rss ${{dir##*/}} $(grep '^VmRSS:' "/proc/$pid/status" 2>/dev/null)"
  done
}}
echo "{HEADER}"
echo "clk_tck $(getconf CLK_TCK 2>/dev/null || echo 100)"
grep -E '^(MemTotal|MemAvailable):' /proc/meminfo
sample 1
sleep {SAMPLE_GAP_S}
sample 2
"""


def probe_command(root: str) -> RemoteCommand:
    """The one remote command of a probe: the constant script, the validated root quoted."""
    return run_script("probe", PROBE_SCRIPT, RemotePath(root))


class SshProbeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: list[str] | None = None
    """Probe only these hosts of the provider (default: all of them)."""


class ProbeFormatError(ValueError):
    """The probe output as a whole is unusable."""


@dataclass
class ShardSample:
    pid: int
    started: int
    """Start time of the process in clock ticks since boot: same pid + start = same process."""
    cpu_ticks: int
    state: str


@dataclass
class Sample:
    uptime_s: float | None = None
    cpu: list[int] = field(default_factory=list)
    """The aggregate `cpu` line of /proc/stat (empty until read)."""
    cores: int = 0
    shards: dict[str, ShardSample] = field(default_factory=dict)
    rss_kib: dict[str, int] = field(default_factory=dict)


@dataclass
class Probe:
    """What the probe script printed, read line by line."""

    clk_tck: int | None = None
    mem_kib: dict[str, int] = field(default_factory=dict)
    samples: dict[int, Sample] = field(default_factory=dict)
    odd: list[QuarantinedRow] = field(default_factory=list)


class SshProbeAdapter:
    """Source type `ssh_probe`; fetches its own payloads (see `skyshard.sources.base.Fetcher`)."""

    type = "ssh_probe"
    tables = ("host_metrics", "shard_usage")
    params_model = SshProbeParams

    def __init__(
        self,
        sky: Callable[[], Sky] = current_sky,
        on_denied: Callable[[Denial], object] | None = record_access_denied,
    ) -> None:
        self._sky = sky
        self._on_denied = on_denied

    def requests(self, source: Source, window: Window) -> list[FetchRequest]:
        return [FetchRequest(host.id, _host_url(host)) for host in self._hosts(self._sky(), source)]

    def fetch(self, request: FetchRequest, source: Source) -> bytes:
        """Run the probe on the host `request.name`; JSON with the output and the probe time."""
        sky = self._sky()
        host_ids = {host.id for host in self._hosts(sky, source)}
        if request.name not in host_ids:
            raise PayloadError(source.id, request.url, f"host {request.name!r} is not probed")
        settings = SshSettings(
            connect_timeout=source.timeout_s,
            command_timeout=source.timeout_s + 2 * SAMPLE_GAP_S,
            attempts=source.retries + 1,
        )
        try:
            with ConnectionPool(settings) as pool:
                policy = broker_policy(sky, self._on_denied)
                access = host_accesses(sky, [request.name], pool, policy)[request.name]
                result = access.session.run(probe_command(access.root), action=ACTION)
        except (ConfigError, SshError, AccessDenied, ValidationError, paramiko.SSHException,
                OSError) as error:  # fmt: skip
            raise PayloadError(source.id, request.url, f"host {request.name}: {error}") from None
        return orjson.dumps(
            {
                "host_id": request.name,
                "probed_at": time.time(),
                "output": result.stdout.decode(errors="replace"),
            }
        )

    def parse(
        self, request: FetchRequest, payload: bytes, source: Source, provider_id: str
    ) -> Parsed:
        host_id = request.name

        def fail(reason: str) -> PayloadError:
            return PayloadError(source.id, request.url, f"host {host_id}: {reason}")

        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise fail(f"probe payload is not valid JSON: {exc}") from None
        if not isinstance(document, dict) or document.get("host_id") != host_id:
            raise fail("probe payload is not a JSON object for this host")
        probed_at = document.get("probed_at")
        output = document.get("output")
        if not isinstance(probed_at, int | float) or not isinstance(output, str):
            raise fail("probe payload needs a numeric probed_at and a text output")
        try:
            ts = datetime.fromtimestamp(int(probed_at), UTC).replace(tzinfo=None)
        except (OverflowError, ValueError, OSError):
            raise fail(f"probed_at {probed_at!r} is not a time") from None
        try:
            probe = read_probe(output, host_id)
            host_values = host_metrics(probe)
        except ProbeFormatError as exc:
            raise fail(str(exc)) from None
        host_rows = [
            {"host_id": host_id, "metric": metric, "value": value}
            for metric, value in host_values.items()
        ]
        shard_rows = [
            {"shard_id": shard_id, "metric": metric, "value": value}
            for shard_id, metric, value in shard_usage(probe)
        ]
        at = {"provider_id": provider_id, "ts": ts}
        return Parsed(
            frames={
                "host_metrics": rows_frame("host_metrics", [row | at for row in host_rows]),
                "shard_usage": rows_frame("shard_usage", [row | at for row in shard_rows]),
            },
            quarantine=probe.odd,
        )

    def _hosts(self, sky: Sky, source: Source) -> list[Host]:
        params = parse_params(SshProbeParams, source.id, source.url, source.params)
        provider = _provider_of(sky, source)
        if params.hosts is None:
            return list(provider.hosts)
        known = {host.id: host for host in provider.hosts}
        for index, host_id in enumerate(params.hosts):
            if host_id not in known:
                raise PayloadError(
                    source.id,
                    source.url,
                    f"params.hosts[{index}]: got {host_id!r}: expected a host of provider "
                    f"{provider.id!r} ({sorted(known)})",
                )
        return [known[host_id] for host_id in dict.fromkeys(params.hosts)]


def _provider_of(sky: Sky, source: Source) -> Provider:
    for provider in sky.providers:
        if any(candidate.id == source.id for candidate in provider.sources):
            return provider
    raise PayloadError(
        source.id, source.url, f"the source is not configured in the sky at {sky.home}"
    )


def _host_url(host: Host) -> str:
    address = f"[{host.address}]" if ":" in host.address else host.address
    return f"ssh://{address}:{host.port}"


def read_probe(output: str, host_id: str) -> Probe:
    """The probe's lines sorted into samples; lines it cannot read are quarantined."""
    lines = output.splitlines()
    if not lines or lines[0].strip() != HEADER:
        first = lines[0][:80] if lines else ""
        raise ProbeFormatError(f"not ssh_probe output (first line {first!r}, want {HEADER!r})")
    probe = Probe()
    sample: Sample | None = None
    for line in lines[1:]:
        if not line.strip():
            continue
        key, _, rest = line.partition(" ")
        try:
            if key == "sample":
                sample = probe.samples.setdefault(int(rest), Sample())
            elif key == "clk_tck":
                probe.clk_tck = int(rest)
            elif key in ("MemTotal:", "MemAvailable:"):
                probe.mem_kib[key.rstrip(":")] = int(rest.split()[0])
            elif sample is not None and key == "uptime":
                sample.uptime_s = float(rest.split()[0])
            elif sample is not None and key == "cpu":
                sample.cpu = [int(value) for value in rest.split()]
            elif sample is not None and key.startswith("cpu") and key[3:].isdigit():
                sample.cores += 1
            elif sample is not None and key in ("shard", "rss"):
                _read_shard_line(sample, key, rest)
            else:
                raise ValueError("unrecognised probe line")
        except (ValueError, IndexError) as exc:
            table = "shard_usage" if key in ("shard", "rss") else "host_metrics"
            probe.odd.append(QuarantinedRow(table, f"host {host_id}: {exc}", line[:500]))
    return probe


def _read_shard_line(sample: Sample, key: str, rest: str) -> None:
    shard_id, _, value = rest.partition(" ")
    validate.shard_id(shard_id)
    if key == "rss":
        if value.strip():  # empty: the process exited between the two reads
            name, kib, unit = value.split()
            if name != "VmRSS:" or unit != "kB":
                raise ValueError(f"unexpected VmRSS line for shard {shard_id}")
            sample.rss_kib[shard_id] = int(kib)
        return
    pid_text, _, after = value.partition(" (")
    fields = after.rsplit(")", 1)[1].split()
    sample.shards[shard_id] = ShardSample(
        pid=int(pid_text),
        started=int(fields[STARTTIME]),
        cpu_ticks=int(fields[UTIME]) + int(fields[STIME]),
        state=fields[STATE],
    )


def _two_samples(probe: Probe) -> tuple[Sample, Sample, float]:
    """The first and second sample, both complete, and the seconds between them."""
    first, second = probe.samples.get(1), probe.samples.get(2)
    if first is None or second is None:
        raise ProbeFormatError("the probe needs samples 1 and 2")
    for number, sample in ((1, first), (2, second)):
        if sample.uptime_s is None or len(sample.cpu) <= max(IDLE_COLUMNS) or not sample.cores:
            raise ProbeFormatError(f"sample {number} lacks its uptime, cpu or per-core lines")
    elapsed = (second.uptime_s or 0.0) - (first.uptime_s or 0.0)
    if elapsed <= 0:
        raise ProbeFormatError("uptime did not advance between the two samples")
    return first, second, elapsed


def host_metrics(probe: Probe) -> dict[str, float]:
    """cpu and memory capacity and free share of the host, from the two samples."""
    first, second, _ = _two_samples(probe)
    missing = {"MemTotal", "MemAvailable"} - set(probe.mem_kib)
    if missing:
        raise ProbeFormatError(f"/proc/meminfo lacks {sorted(missing)}")
    total = sum(second.cpu[:TIME_COLUMNS]) - sum(first.cpu[:TIME_COLUMNS])
    idle = sum(second.cpu[i] - first.cpu[i] for i in IDLE_COLUMNS)
    if total <= 0:
        raise ProbeFormatError("cpu time did not advance between the two samples")
    idle_share = min(max(idle / total, 0.0), 1.0)
    return {
        "cpu_capacity": float(second.cores),
        "cpu_free": second.cores * idle_share,
        "mem_gb_capacity": probe.mem_kib["MemTotal"] / KIB_PER_GIB,
        "mem_gb_free": probe.mem_kib["MemAvailable"] / KIB_PER_GIB,
    }


def shard_usage(probe: Probe) -> list[tuple[str, str, float]]:
    """(shard_id, metric, value): cores used between the samples, and resident memory."""
    first, second, elapsed = _two_samples(probe)
    ticks_per_s = probe.clk_tck or 100
    rows = []
    for shard_id, now in sorted(second.shards.items()):
        if now.state == "Z":
            continue
        before = first.shards.get(shard_id)
        if before is not None and (before.pid, before.started) == (now.pid, now.started):
            cores = max(now.cpu_ticks - before.cpu_ticks, 0) / ticks_per_s / elapsed
            rows.append((shard_id, "cpu", cores))
        if shard_id in second.rss_kib:
            rows.append((shard_id, "mem_gb", second.rss_kib[shard_id] / KIB_PER_GIB))
    return rows
