"""The shard runtime on a host: a self-contained helper script, copied and verified by SHA-256.

Like `transport/store_helper.py` it needs only the standard library (plus `zstandard` or the
`zstd` command for snapshots) because hosts may not have skyshard installed. One shard is one
process (its own session and process group) with `<root>/shards/<shard_id>/`:
  state/            the shard's data (what migrations copy)
  pid               the running process id
  isolation         "cgroup" or "signals": how this start isolated and freezes the process
  address           the address the copy listens on (its health check connects there)
  generation        the routing generation this copy was started for (the fence, see below)
  snapshot-cache.json / restore-cache.json  which files were already chunked / restored

With root and cgroup v1 cpu, memory and freezer hierarchies mounted, the process runs in
`/sys/fs/cgroup/<controller>/skyshard/<root hash>-<shard_id>` with cpu/memory limits and is
frozen by the freezer; otherwise it is frozen with SIGSTOP/SIGCONT on its process group.

Operations (argv[1]), all `<op> <root> <shard_id> [options]`, JSON on stdout:
  start     --port --app --generation [--bind] [--cpu-millicores] [--memory-bytes] [--isolation]
  stop      [--kill]    (SIGKILL at once: for a frozen copy whose in-flight requests must die)
  adopt     --pid --state --port --generation [--bind]: take over a running copy (own group)
  freeze | thaw | status | clean (stop, then delete the shard's directory)
  health    --port [--timeout]          poll GET /health on the host until 200
  snapshot  chunk changed state files (fixed 1 MiB chunks) into <root>/chunks; print manifest
  freeze-snapshot                       freeze, then snapshot (one round trip in the cutover)
  restore   --digest [--full-verify]    stdin: manifest; rebuild state/ reusing unchanged files
  handover  start options + --digest [--full-verify] [--timeout]: the target's cutover in one
            run. stdin line 1: the manifest; it restores and prints {"restored": ...}, then
            waits for stdin line 2 "start" (sent once the source is dead and the move's
            cutover phase is persisted), starts, prints {"started": ...}, polls health and
            prints {"healthy": ...}. Closed stdin instead of "start": exits 6, nothing started.
Exit status 3: corrupted data, 4: unhealthy, 5: refused by a fence, 6: no start order,
2: bad usage or failure.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

VERSION = 2
SHARD_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
HASH = re.compile(r"[0-9a-f]{64}")
CHUNK_SIZE = 1 << 20
# A file modified this recently may change again within the same timestamp tick, so its
# cached chunk list is not trusted (git's "racily clean" rule).
RACY_NS = 1_000_000_000
CGROUP_BASE = Path("/sys/fs/cgroup")
CONTROLLERS = ("cpu", "memory", "freezer")
CFS_PERIOD_US = 100_000
STOP_GRACE = 5.0
EXIT_USAGE = 2
EXIT_CORRUPT = 3
EXIT_UNHEALTHY = 4
EXIT_FENCED = 5
EXIT_NOT_STARTED = 6
START_ORDER = b"start\n"
HEALTH_POLL = 0.005
# A copy bound to every interface is reached through the host's own loopback.
WILDCARD_PEERS = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 (not a bind)


class HelperError(Exception):
    exit_status = EXIT_USAGE


class CorruptData(HelperError):
    exit_status = EXIT_CORRUPT


class Unhealthy(HelperError):
    exit_status = EXIT_UNHEALTHY


class Fenced(HelperError):
    exit_status = EXIT_FENCED


class NotStarted(HelperError):
    exit_status = EXIT_NOT_STARTED


class Shard:
    """Paths and process control of one shard below a host root."""

    def __init__(self, root: Path, shard_id: str) -> None:
        if not SHARD_ID.fullmatch(shard_id):
            raise HelperError(f"invalid shard id {shard_id!r}")
        self.root = root
        self.id = shard_id
        self.dir = root / "shards" / shard_id
        self.state = self.dir / "state"
        self.pid_file = self.dir / "pid"
        tag = hashlib.sha256(str(root).encode()).hexdigest()[:12]
        self.cgroup_name = f"skyshard/{tag}-{shard_id}"

    def cgroup(self, controller: str) -> Path:
        return CGROUP_BASE / controller / self.cgroup_name

    def isolation(self) -> str:
        path = self.dir / "isolation"
        return path.read_text().strip() if path.exists() else "signals"

    def pid(self) -> int | None:
        """The live process started for this shard, or None (stale pid files are ignored)."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        # Guards against pid reuse: the process must be ours, with our state directory (an
        # adopted copy names the directory our `state` links to).
        named = {str(self.state).encode(), str(self.state.resolve()).encode()}
        if not any(path in cmdline for path in named):
            return None
        if _process_state(pid) == "Z":
            return None
        return pid

    def frozen(self) -> bool:
        if self.isolation() == "cgroup":
            state = self.cgroup("freezer") / "freezer.state"
            return state.exists() and state.read_text().strip() != "THAWED"
        return (self.dir / "frozen").exists()

    def generation(self) -> int:
        path = self.dir / "generation"
        return int(path.read_text()) if path.exists() else 0

    def address(self) -> str:
        """Where the copy answers: its bind address, or loopback when it binds every interface."""
        path = self.dir / "address"
        bound = path.read_text().strip() if path.exists() else ""
        return WILDCARD_PEERS.get(bound, bound) or "127.0.0.1"


def _process_state(pid: int) -> str:
    """The one-letter state in /proc/<pid>/stat (R, S, T stopped, Z zombie, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"


def cgroup_problem() -> str | None:
    """Why this host cannot isolate shards in cgroups (root and writable cgroup v1 cpu,
    memory and freezer hierarchies are needed), or None when it can."""
    if os.geteuid() != 0:
        return "the login user is not root"
    missing = [c for c in CONTROLLERS if not (CGROUP_BASE / c / "cgroup.procs").exists()]
    if not missing:
        return None
    if (CGROUP_BASE / "cgroup.controllers").exists():
        return f"{CGROUP_BASE} is cgroup v2 (unified); only cgroup v1 hierarchies are supported"
    return f"cgroup v1 hierarchies {missing} are not mounted under {CGROUP_BASE}"


def cgroups_available() -> bool:
    return cgroup_problem() is None


def status(shard: Shard) -> dict:
    pid = shard.pid()
    return {
        "shard_id": shard.id,
        "running": pid is not None,
        "pid": pid,
        "frozen": pid is not None and shard.frozen(),
        "isolation": shard.isolation(),
        "generation": shard.generation(),
        "state_exists": shard.state.is_dir(),
        "root_free_bytes": _free_bytes(shard.root),
        "helper_version": VERSION,
    }


def _free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    temporary.write_text(text)
    os.replace(temporary, path)


def _make_cgroups(shard: Shard, millicores: int, memory_bytes: int) -> None:
    for controller in CONTROLLERS:
        shard.cgroup(controller).mkdir(parents=True, exist_ok=True)
    if millicores > 0:
        quota = millicores * CFS_PERIOD_US // 1000
        (shard.cgroup("cpu") / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (shard.cgroup("cpu") / "cpu.cfs_quota_us").write_text(str(quota))
    if memory_bytes > 0:
        (shard.cgroup("memory") / "memory.limit_in_bytes").write_text(str(memory_bytes))
    (shard.cgroup("freezer") / "freezer.state").write_text("THAWED")


def _remove_cgroups(shard: Shard) -> None:
    for controller in CONTROLLERS:
        path = shard.cgroup(controller)
        deadline = time.monotonic() + STOP_GRACE
        while path.exists():
            try:
                path.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)  # the killed tasks are still leaving the group


def start(shard: Shard, args: argparse.Namespace) -> dict:
    if shard.pid() is not None:
        current = shard.generation()
        if current != args.generation:
            raise Fenced(f"shard {shard.id} already runs here for generation {current}")
        return status(shard)  # idempotent: the same start asked again
    if args.generation < shard.generation():
        raise Fenced(
            f"shard {shard.id}: generation {args.generation} is older than the fence "
            f"{shard.generation()} on this host"
        )
    app = shard.root / args.app
    if not app.is_file() or ".." in Path(args.app).parts:
        raise HelperError(f"workload script {args.app!r} not found below {shard.root}")
    shard.state.mkdir(parents=True, exist_ok=True)
    isolation = args.isolation
    if isolation != "signals":
        problem = cgroup_problem()
        limited = args.cpu_millicores > 0 or args.memory_bytes > 0
        # `auto` falls back to signals only when nothing would go unenforced.
        if problem and (isolation == "cgroup" or limited):
            raise HelperError(
                f"shard {shard.id}: cannot enforce cpu/memory limits here: {problem}; "
                "start it without limits or with --isolation signals to run it unlimited"
            )
        isolation = "signals" if problem else "cgroup"
    if isolation == "cgroup":
        _make_cgroups(shard, args.cpu_millicores, args.memory_bytes)
    _write(shard.dir / "isolation", isolation)
    _write(shard.dir / "generation", str(args.generation))
    _write(shard.dir / "address", args.bind)
    (shard.dir / "frozen").unlink(missing_ok=True)
    procs = [shard.cgroup(c) / "cgroup.procs" for c in CONTROLLERS] if isolation == "cgroup" else []

    def enter_cgroups() -> None:
        for path in procs:
            path.write_text("0")  # "0" moves the writing (child) process itself

    command = [sys.executable, str(app), "--state", str(shard.state), "--port", str(args.port),
               "--address", args.bind]  # fmt: skip
    with (shard.dir / "shard.log").open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            preexec_fn=enter_cgroups if procs else None,
        )
    _write(shard.pid_file, str(process.pid))
    deadline = time.monotonic() + STOP_GRACE
    # Until the child has exec'd, its command line is still ours and `pid()` would not know it.
    while shard.pid() is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    return status(shard)


def adopt(shard: Shard, args: argparse.Namespace) -> dict:
    """Take over a copy started outside skyshard: its state directory becomes the shard's
    `state` (a link), its process the shard's process, fenced at `--generation`."""
    if shard.pid() is not None:
        raise Fenced(f"shard {shard.id} already runs here (pid {shard.pid()})")
    if args.generation < shard.generation():
        raise Fenced(
            f"shard {shard.id}: generation {args.generation} is older than the fence "
            f"{shard.generation()} on this host"
        )
    state = Path(args.state)
    if not state.is_absolute() or not state.is_dir():
        raise HelperError(f"--state {args.state!r} is not an existing absolute directory")
    try:
        cmdline = Path(f"/proc/{args.pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        raise HelperError(f"no process {args.pid} on this host") from None
    if str(state).encode() not in cmdline:
        raise HelperError(f"process {args.pid} does not name {state} on its command line")
    # Freeze and stop signal the process group: it must be the whole shard.
    if os.getpgid(args.pid) != args.pid:
        raise HelperError(
            f"process {args.pid} does not lead its own process group; start it with setsid"
        )
    shard.dir.mkdir(parents=True, exist_ok=True)
    if shard.state.is_symlink() or shard.state.exists():
        if shard.state.resolve() != state.resolve():
            raise HelperError(f"shard {shard.id} already has state here ({shard.state})")
    else:
        shard.state.symlink_to(state)
    _write(shard.dir / "isolation", "signals")
    _write(shard.dir / "generation", str(args.generation))
    _write(shard.dir / "address", args.bind)
    _write(shard.pid_file, str(args.pid))
    return status(shard)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _wait_gone(shard: Shard, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while shard.pid() is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def set_frozen(shard: Shard, frozen: bool) -> dict:
    pid = shard.pid()
    if pid is None:
        raise HelperError(f"shard {shard.id} is not running")
    if shard.isolation() == "cgroup":
        wanted = "FROZEN" if frozen else "THAWED"
        state = shard.cgroup("freezer") / "freezer.state"
        state.write_text(wanted)
        deadline = time.monotonic() + STOP_GRACE
        while state.read_text().strip() != wanted:
            if time.monotonic() > deadline:
                raise HelperError(f"shard {shard.id}: freezer stuck in {state.read_text()!r}")
            time.sleep(0.005)
    else:
        _signal_group(pid, signal.SIGSTOP if frozen else signal.SIGCONT)
        # Signals are delivered asynchronously: a snapshot must not start before the stop.
        deadline = time.monotonic() + STOP_GRACE
        while (_process_state(pid) == "T") != frozen:
            if time.monotonic() > deadline:
                raise HelperError(
                    f"shard {shard.id}: process {pid} did not {'stop' if frozen else 'continue'}"
                )
            time.sleep(0.002)
        marker = shard.dir / "frozen"
        if frozen:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)
    return status(shard)


def stop(shard: Shard, kill: bool) -> dict:
    pid = shard.pid()
    if pid is not None:
        was_frozen = shard.frozen()
        if kill or was_frozen:
            # A frozen copy must not run even one more request: kill it before it thaws.
            _signal_group(pid, signal.SIGKILL)
        else:
            _signal_group(pid, signal.SIGTERM)
        if was_frozen:
            if shard.isolation() == "cgroup":
                (shard.cgroup("freezer") / "freezer.state").write_text("THAWED")
            else:
                _signal_group(pid, signal.SIGCONT)
        if not _wait_gone(shard, STOP_GRACE):
            _signal_group(pid, signal.SIGKILL)
            if not _wait_gone(shard, STOP_GRACE):
                raise HelperError(f"shard {shard.id}: process {pid} did not exit")
    if shard.isolation() == "cgroup":
        _remove_cgroups(shard)
    shard.pid_file.unlink(missing_ok=True)
    (shard.dir / "frozen").unlink(missing_ok=True)
    return status(shard)


def clean(shard: Shard) -> dict:
    stop(shard, kill=True)
    shutil.rmtree(shard.dir, ignore_errors=True)
    return {"shard_id": shard.id, "cleaned": True}


def _get_health(address: str, port: int) -> tuple[int, dict]:
    """GET /health over a plain socket: urllib's import alone costs more than a whole probe."""
    with socket.create_connection((address, port), timeout=1.0) as connection:
        connection.sendall(f"GET /health HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
        response = b""
        while data := connection.recv(65536):
            response += data
    head, _, body = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError(f"not an HTTP response: {head[:80]!r}")
    return int(status_line[1]), json.loads(body)


def health(shard: Shard, port: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if shard.pid() is None:
            raise Unhealthy(f"shard {shard.id} is not running; log tail: {_log_tail(shard)}")
        try:
            code, body = _get_health(shard.address(), port)
            if code == 200 and body.get("pid") == shard.pid():
                return {"healthy": True, **body}
            last = f"HTTP {code} {body}"
        except (OSError, ValueError) as error:
            last = repr(error)
        if time.monotonic() > deadline:
            raise Unhealthy(
                f"shard {shard.id} on {shard.address()}:{port} unhealthy after {timeout}s: {last}"
            )
        time.sleep(HEALTH_POLL)


def _log_tail(shard: Shard) -> str:
    path = shard.dir / "shard.log"
    return path.read_text(errors="replace")[-500:] if path.exists() else "(no log)"


# --- snapshots ---------------------------------------------------------------------------


def chunk_path(root: Path, digest: str) -> Path:
    """The store layout of `transport/store_helper.py`: <root>/chunks/ab/<sha256>."""
    return root / "chunks" / digest[:2] / digest


def _compress(data: bytes) -> bytes:
    try:
        import zstandard
    except ImportError:
        return subprocess.run(["zstd", "-1", "-qc"], input=data, capture_output=True,
                              check=True).stdout  # fmt: skip
    return zstandard.ZstdCompressor(level=1).compress(data)


def _decompress(blob: bytes) -> bytes:
    try:
        import zstandard
    except ImportError:
        return subprocess.run(["zstd", "-dqc"], input=blob, capture_output=True, check=True).stdout
    return zstandard.ZstdDecompressor().decompress(blob)


def _store_file(root: Path, path: Path) -> dict:
    chunks = []
    file_hash = hashlib.sha256()
    with path.open("rb") as handle:
        while data := handle.read(CHUNK_SIZE):
            digest = hashlib.sha256(data).hexdigest()
            file_hash.update(data)
            target = chunk_path(root, digest)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                temporary = target.with_name(f".{digest}.{uuid.uuid4().hex}")
                temporary.write_bytes(_compress(data))
                os.replace(temporary, target)
            chunks.append([digest, len(data)])
    return {"sha256": file_hash.hexdigest(), "chunks": chunks}


def _identity(info: os.stat_result) -> list[int]:
    return [info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _restored_identity(info: os.stat_result) -> list[int]:
    """Without ctime: linking a kept file into the next tree (and dropping the old tree)
    changes its link count and so its ctime; nothing else writes a target's files."""
    return [info.st_ino, info.st_size, info.st_mtime_ns]


def _state_files(state: Path) -> list[tuple[str, Path]]:
    found = []
    for directory, subdirs, names in os.walk(state):
        for name in names + [d for d in subdirs if Path(directory, d).is_symlink()]:
            path = Path(directory, name)
            if path.is_symlink() or not path.is_file():
                raise HelperError(f"state file {path} is not a regular file")
            found.append((path.relative_to(state).as_posix(), path))
    return sorted(found)


def _load_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def snapshot(shard: Shard) -> bytes:
    """Chunk the files changed since the last snapshot; return the canonical manifest JSON."""
    if not shard.state.is_dir():
        raise HelperError(f"shard {shard.id} has no state directory {shard.state}")
    cache_path = shard.dir / "snapshot-cache.json"
    cache = _load_cache(cache_path)
    racy_after = time.time_ns() - RACY_NS
    files, fresh = [], {}
    for relative, path in _state_files(shard.state):
        info = path.stat()
        identity = _identity(info)
        cached = cache.get(relative)
        if cached and cached["identity"] == identity:
            entry = cached["entry"]
        else:
            entry = _store_file(shard.root, path)
        racy = max(info.st_mtime_ns, info.st_ctime_ns) > racy_after
        # A file that changed while being read gives a self-consistent but stale entry: fine
        # for a pre-copy round, never cached, so the next round reads it again.
        if not racy and _identity(path.stat()) == identity:
            fresh[relative] = {"identity": identity, "entry": entry}
        files.append(
            {
                "path": relative,
                "mode": info.st_mode & 0o7777,
                "size": sum(size for _, size in entry["chunks"]),
                "sha256": entry["sha256"],
                "chunks": entry["chunks"],
            }
        )
    _write(cache_path, json.dumps(fresh))
    document = {"version": 1, "shard_id": shard.id, "files": files}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")


def _read_chunk(root: Path, digest: str, size: int, file_path: str) -> bytes:
    try:
        data = _decompress(chunk_path(root, digest).read_bytes())
    except FileNotFoundError:
        raise CorruptData(f"file {file_path}: chunk {digest} missing from the store") from None
    except Exception as error:
        chunk_path(root, digest).unlink(missing_ok=True)
        raise CorruptData(f"file {file_path}: chunk {digest} is not a zstd frame") from error
    if hashlib.sha256(data).hexdigest() != digest or len(data) != size:
        # Drop it, so the store reports it missing and the next transfer sends it again.
        chunk_path(root, digest).unlink(missing_ok=True)
        raise CorruptData(f"file {file_path}: chunk {digest} content does not match its hash")
    return data


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while data := handle.read(CHUNK_SIZE):
            digest.update(data)
    return digest.hexdigest()


def restore(shard: Shard, manifest: bytes, expected: str, full_verify: bool) -> dict:
    """Rebuild `state/` from the manifest: files restored earlier and unchanged since are
    hard-linked (their hash was verified when written), the rest is written from verified
    chunks and hashed; the new tree replaces the old one only when everything matched."""
    actual = hashlib.sha256(manifest).hexdigest()
    if actual != expected:
        raise CorruptData(f"manifest hashes to {actual}, expected {expected}")
    if shard.pid() is not None:
        raise Fenced(f"shard {shard.id} is running here; refusing to replace its state")
    cache_path = shard.dir / "restore-cache.json"
    cache = _load_cache(cache_path)
    staging = shard.dir / ".state.next"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    fresh, written, reused, total = {}, 0, 0, 0
    try:
        for entry in json.loads(manifest)["files"]:
            relative = entry["path"]
            parts = relative.split("/")
            if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
                raise HelperError(f"unsafe path in manifest: {relative!r}")
            current = shard.state / relative
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            cached = cache.get(relative)
            try:
                same = cached == [entry["sha256"], *_restored_identity(current.stat())]
            except FileNotFoundError:
                same = False
            if same and (not full_verify or _file_sha256(current) == entry["sha256"]):
                os.link(current, destination)
                reused += 1
            else:
                file_hash = hashlib.sha256()
                with destination.open("wb") as out:
                    for digest, size in entry["chunks"]:
                        data = _read_chunk(shard.root, digest, size, relative)
                        out.write(data)
                        file_hash.update(data)
                    out.flush()
                    os.fsync(out.fileno())
                if file_hash.hexdigest() != entry["sha256"]:
                    raise CorruptData(f"file {relative}: content does not match its hash")
                written += 1
            os.chmod(destination, entry["mode"])
            fresh[relative] = [entry["sha256"], *_restored_identity(destination.stat())]
            total += entry["size"]
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = shard.dir / ".state.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if shard.state.exists():
        os.replace(shard.state, previous)
    os.replace(staging, shard.state)
    shutil.rmtree(previous, ignore_errors=True)
    _write(cache_path, json.dumps(fresh))
    return {"files": len(fresh), "bytes": total, "written": written, "reused": reused}


def _emit(document: dict) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def handover(shard: Shard, args: argparse.Namespace) -> dict:
    """The target's side of a cutover in one run: restore, wait for the start order, start,
    health. The broker sends the order only after the source copy is dead (the fence), so a
    broker that dies or gives up first leaves nothing started here."""
    if args.generation < shard.generation():
        raise Fenced(
            f"shard {shard.id}: generation {args.generation} is older than the fence "
            f"{shard.generation()} on this host"
        )
    manifest = sys.stdin.buffer.readline().removesuffix(b"\n")
    _emit({"restored": restore(shard, manifest, args.digest, args.full_verify)})
    order = sys.stdin.buffer.readline()
    if order != START_ORDER:
        raise NotStarted(f"shard {shard.id}: restored but not started (start order {order!r})")
    _emit({"started": start(shard, args)})
    return {"healthy": health(shard, args.port, args.timeout)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runtime-helper")
    parser.add_argument("operation")
    parser.add_argument("root", type=Path)
    parser.add_argument("shard_id")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--app", default="")
    parser.add_argument("--generation", type=int, default=0)
    parser.add_argument("--cpu-millicores", type=int, default=0)
    parser.add_argument("--memory-bytes", type=int, default=0)
    parser.add_argument("--isolation", choices=("auto", "cgroup", "signals"), default="auto")
    parser.add_argument("--kill", action="store_true")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--digest", default="")
    parser.add_argument("--full-verify", action="store_true")
    parser.add_argument("--pid", type=int, default=0)
    parser.add_argument("--state", default="")
    return parser


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv[1:])
        shard = Shard(args.root, args.shard_id)
        operation = args.operation
        if operation in ("snapshot", "freeze-snapshot"):
            if operation == "freeze-snapshot":
                set_frozen(shard, True)
            sys.stdout.buffer.write(snapshot(shard))
            return 0
        if operation in ("restore", "handover") and not HASH.fullmatch(args.digest):
            raise HelperError(f"{operation} needs --digest <sha256>")
        if operation == "start":
            result = start(shard, args)
        elif operation == "adopt":
            result = adopt(shard, args)
        elif operation == "stop":
            result = stop(shard, args.kill)
        elif operation in ("freeze", "thaw"):
            result = set_frozen(shard, operation == "freeze")
        elif operation == "status":
            result = status(shard)
        elif operation == "clean":
            result = clean(shard)
        elif operation == "health":
            result = health(shard, args.port, args.timeout)
        elif operation == "restore":
            result = restore(shard, sys.stdin.buffer.read(), args.digest, args.full_verify)
        elif operation == "handover":
            result = handover(shard, args)
        else:
            raise HelperError(f"unknown operation {operation!r}")
    except HelperError as error:
        print(f"runtime-helper: {type(error).__name__}: {error}", file=sys.stderr)
        return error.exit_status
    except (OSError, ValueError, KeyError, subprocess.CalledProcessError) as error:
        print(f"runtime-helper: error: {error!r}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
