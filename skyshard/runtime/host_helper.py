"""The shard runtime on a host: a self-contained helper script, copied and verified by SHA-256.

It needs only the standard library (plus `zstandard` or the `zstd` command for snapshots)
because hosts may not have skyshard installed. One shard is one
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
  snapshot  chunk changed state files (content-defined chunks, below) into <root>/chunks;
            print the manifest
  freeze-snapshot                       freeze, then snapshot (one round trip in the cutover)
  restore   --digest [--full-verify]    stdin: manifest; rebuild state/ reusing unchanged files
  handover  start options + --digest [--full-verify] [--timeout]: the target's cutover in one
            run. stdin line 1: the manifest; it restores and prints {"restored": ...}, then
            waits for stdin line 2 "start" (sent once the source is dead and the move's
            cutover phase is persisted), starts, prints {"started": ...}, polls health and
            prints {"healthy": ...}. Closed stdin instead of "start": exits 6, nothing started.
  missing   stdin: chunk hashes, one a line; prints those the store lacks
  inventory prints every chunk hash in the store
  push      --move --to-address --to-port --to-user [--snapshot]: send the chunks listed in
            <root>/moves/<move>/send straight to the target host with OpenSSH `ssh`, using
            that move's key, certificate and known_hosts (written there by the broker); with
            --snapshot, cut a snapshot and send each chunk not listed in the move's `have`
            file as soon as it is cut; prints {"progress": bytes} lines while sending, then
            the summary (with --snapshot, the manifest too)
  receive   --move: the target's end of `push`, run only as the certificate's forced command:
            accepts each chunk listed in <root>/moves/<move>/expected once (or, when that file
            says `stream <bytes>`, any chunk once, up to that many bytes), verified by SHA-256
Exit status 3: corrupted data, 4: unhealthy, 5: refused by a fence, 6: no start order,
7: a required tool is missing, 2: bad usage or failure.

Chunk store layout: `<root>/chunks/<first two hex digits>/<sha256>` holds a zstd frame whose
decompressed content hashes to the file name (zstd through the `zstandard` module or the
`zstd` command). Chunks whose sample does not compress are stored as a frame of raw blocks,
written without a zstd pass.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import errno
import fcntl
import hashlib
import io
import json
import mmap
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

VERSION = 5
SHARD_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
HASH = re.compile(r"[0-9a-f]{64}")
READ_SIZE = 1 << 20
# Operations that move chunk-sized buffers (see `_reuse_freed_memory`), and glibc's mallopt
# parameters for it.
BULK_OPERATIONS = frozenset({"snapshot", "freeze-snapshot", "restore", "handover", "push", "index",
                             "receive"})  # fmt: skip
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
HEAP_ALLOCATION_MAX = 64 << 20
# Chunks cut but not yet hashed and stored (see InOrder): a few MiB at most.
CHUNKS_IN_FLIGHT = 8
# The restore asks the disk to write back every this many bytes (see Writeback).
SYNC_EVERY = 32 << 20
# Buffers a whole-file copy cycles through: one being read, one hashed, one written.
COPY_BUFFERS = 4
O_DIRECT = getattr(os, "O_DIRECT", 0)
# Direct writes in whole multiples of this (every block size in use divides it).
DIRECT_BLOCK = 4096
# fsyncs in flight at once when a whole receive makes its files durable.
FSYNC_THREADS = 32
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
EXIT_MISSING_TOOL = 7
ZSTD_MAGIC = bytes.fromhex("28b52ffd")
ZSTD_MAX_BLOCK = 128 * 1024  # the format's Block_Maximum_Size
# Frame header descriptor: single segment, 4-byte content size, no checksum, no dictionary.
RAW_FRAME_DESCRIPTOR = bytes([0xA0])
COMPRESSION_SAMPLE = 4096
# A sample that zlib's fastest level shrinks by less than 10 % is stored raw.
INCOMPRESSIBLE = 0.9
START_ORDER = b"start\n"
HEALTH_POLL = 0.005
INDEX_POLL = 0.1
PARKED_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\.[0-9a-f]{32}")
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


class MissingTool(HelperError):
    exit_status = EXIT_MISSING_TOOL


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
        "state_bytes": _tree_bytes(shard.state),
        "root_free_bytes": _free_bytes(shard.root),
        "helper_version": VERSION,
    }


def _tree_bytes(directory: Path) -> int:
    """The bytes of the regular files below `directory` (0 when it does not exist)."""
    total = 0
    for parent, _subdirs, names in os.walk(directory):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(parent, name), follow_symlinks=False).st_size
    return total


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


def clean(shard: Shard, index: bool = False) -> dict:
    """Stop the shard and delete its directory. With `index`, its state is first parked and
    cut into the host's chunk store by a detached helper run (off the caller's path), so a
    later move back here sends only what changed; `inventory` waits for that run."""
    stop(shard, kill=True)
    if not (index and shard.state.is_dir()):
        shutil.rmtree(shard.dir, ignore_errors=True)
        return {"shard_id": shard.id, "cleaned": True}
    parked = shard.root / "indexing" / f"{shard.id}.{uuid.uuid4().hex}"
    parked.parent.mkdir(parents=True, exist_ok=True)
    # The lock is taken before the tree is parked and inherited by the indexer (one open file
    # description), so `inventory` never sees the parked tree unlocked while it is indexed.
    with (shard.dir / ".lock").open("wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.replace(shard.dir, parked)
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "index", str(shard.root), shard.id,
             "--state", str(parked)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, pass_fds=(lock.fileno(),),
        )  # fmt: skip
    return {"shard_id": shard.id, "cleaned": True, "indexing": True}


def index_parked(root: Path, parked: Path) -> dict:
    """Cut a parked state tree's files into the chunk store, then delete the tree."""
    if parked.parent != root / "indexing" or not PARKED_NAME.fullmatch(parked.name):
        raise HelperError(f"{parked} is not a parked state tree under {root / 'indexing'}")
    chunks = 0
    for _, path in _state_files(parked / "state"):
        chunks += len(_store_file(root, path, None)["chunks"])
    shutil.rmtree(parked, ignore_errors=True)
    return {"chunks": chunks}


def _wait_for_indexing(root: Path, timeout: float) -> None:
    """Wait until no parked tree is being indexed (its indexer holds its lock); trees whose
    indexer died are dropped (a later transfer sends what their chunks would have saved)."""
    deadline = time.monotonic() + timeout
    parked_trees = root / "indexing"
    for parked in sorted(parked_trees.iterdir()) if parked_trees.is_dir() else []:
        with contextlib.suppress(FileNotFoundError), (parked / ".lock").open("rb") as lock:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return
                    time.sleep(INDEX_POLL)
        shutil.rmtree(parked, ignore_errors=True)


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
    return root / "chunks" / digest[:2] / digest


# --- content-defined chunking ------------------------------------------------------------
#
# FastCDC's cut rule (normalized chunking: a strict condition before the average size, a loose
# one after it) over a rolling hash that needs only the standard library: the data block, read
# as one little-endian integer, times an odd 64-bit constant. Byte p of the product mixes bytes
# p-7..p (plus carries from below), so whether p ends a chunk depends on nearby content only:
# inserted bytes move the cut points only up to the next one. CPython's big-integer multiply
# runs this at C speed, about as fast as numpy's gear hash, on hosts without numpy.
HASH_MULTIPLIER = 0x9E37_79B9_7F4A_7C15
HASH_BLOCK = 1 << 20
HASH_LEAD = 16  # bytes of context included from before each block (>= 8 the multiplier mixes)
# Cut where the word's top bits equal this pattern's: not zero, so that runs of zeros (whose
# product is zero) get maximum-size chunks instead of minimum-size ones.
CUT_PATTERN = 0xA53C_96E1


class ChunkParams:
    """Minimum, average (a power of two, at least 512) and maximum chunk size in bytes."""

    def __init__(self, min_size: int, avg_size: int, max_size: int) -> None:
        if avg_size & (avg_size - 1) or avg_size < 512:
            raise ValueError(f"avg_size must be a power of two >= 512, got {avg_size}")
        if not HASH_LEAD < min_size < avg_size < max_size:
            raise ValueError(
                f"need {HASH_LEAD} < min_size < avg_size < max_size, got "
                f"{min_size}/{avg_size}/{max_size}"
            )
        self.min_size, self.avg_size, self.max_size = min_size, avg_size, max_size
        bits = avg_size.bit_length() - 1
        self.strict_mask = _top_bits(bits + 1)
        self.loose_mask = _top_bits(bits - 1)
        self.needle = CUT_PATTERN.to_bytes(4, "little")[4 - min(2, (bits - 1) // 8) :]


def _top_bits(count: int) -> int:
    return ((1 << count) - 1) << (32 - count)


# 256 KiB average: re-sending after a 1 % change costs about one average chunk on each side of
# the change, which stays within 1.1x the changed bytes (1 MiB chunks measured 1.19x).
DEFAULT_CHUNKS = ChunkParams(64 << 10, 256 << 10, 1 << 20)


def cut_candidates(
    data: bytes | mmap.mmap, params: ChunkParams, start: int
) -> tuple[list[int], list[int]]:
    """Sorted chunk end offsets in the hash block at `start` where the strict and where the
    loose condition hold.

    The condition at byte p looks at the 32-bit word of the hash product ending at p: its top
    bits must equal CUT_PATTERN's. `find` skips to positions whose top byte(s) match, so
    Python only looks at a few positions per block."""
    strict: list[int] = []
    loose: list[int] = []
    needle = params.needle
    lead = min(start, HASH_LEAD)
    block = data[start - lead : start + HASH_BLOCK]
    product = (int.from_bytes(block, "little") * HASH_MULTIPLIER).to_bytes(len(block) + 8, "little")
    first = max(lead, 3)  # positions of this block with a whole word before them
    found = product.find(needle, first - len(needle) + 1, len(block))
    while found != -1:
        position = found + len(needle) - 1
        word = int.from_bytes(product[position - 3 : position + 1], "little") ^ CUT_PATTERN
        end = start - lead + position + 1
        if not word & params.loose_mask:
            loose.append(end)
            if not word & params.strict_mask:
                strict.append(end)
        found = product.find(needle, found + 1, len(block))
    return strict, loose


def _first_in(candidates: list[int], low: int, high: int) -> int | None:
    index = bisect.bisect_left(candidates, low)
    if index < len(candidates) and candidates[index] < high:
        return candidates[index]
    return None


def iter_chunk_spans(data: bytes | mmap.mmap, params: ChunkParams) -> Iterator[tuple[int, int]]:
    """(offset, length) of every chunk of `data`, in order, each as soon as it is decided:
    the hash runs one block ahead of the cuts, so a caller can send a chunk while the rest of
    a large file is still being hashed."""
    size = len(data)
    strict: list[int] = []
    loose: list[int] = []
    scanned = 0
    start = 0
    while start < size:
        limit = min(start + params.max_size, size)
        while scanned < limit:
            more_strict, more_loose = cut_candidates(data, params, scanned)
            strict += more_strict
            loose += more_loose
            scanned = min(scanned + HASH_BLOCK, size)
        if size - start <= params.min_size:
            end = size
        else:
            normal = min(start + params.avg_size, size)
            end = (
                _first_in(strict, start + params.min_size, normal)
                or _first_in(loose, normal, limit)
                or limit
            )
        yield start, end - start
        start = end


def chunk_spans(data: bytes | mmap.mmap, params: ChunkParams) -> list[tuple[int, int]]:
    """(offset, length) of every chunk of `data`, in order; empty data has no chunks."""
    return list(iter_chunk_spans(data, params))


# --- the chunk store ---------------------------------------------------------------------


def _zstandard():
    try:
        import zstandard
    except ImportError:
        if shutil.which("zstd") is None:
            raise MissingTool(
                "neither the Python module zstandard (for " + sys.executable + ") nor the "
                "zstd command (PATH=" + os.environ.get("PATH", "") + ") is available on this "
                "host; install one of them (e.g. apt-get install zstd)"
            ) from None
        return None
    return zstandard


def raw_frame(data: bytes) -> bytes:
    """A zstd frame of raw (stored) blocks holding `data`: what zstd itself writes for
    incompressible data, built without a compression pass. Any zstd decoder reads it, and
    `_raw_block_payloads` hashes it in place."""
    parts = [ZSTD_MAGIC, RAW_FRAME_DESCRIPTOR, len(data).to_bytes(4, "little")]
    for offset in range(0, max(len(data), 1), ZSTD_MAX_BLOCK):
        block = data[offset : offset + ZSTD_MAX_BLOCK]
        last = offset + ZSTD_MAX_BLOCK >= len(data)
        parts += [(len(block) << 3 | last).to_bytes(3, "little"), block]
    return b"".join(parts)


def encode_chunk(data: bytes) -> bytes:
    """The stored frame of a chunk: compressed, unless a sample of it does not compress (random
    or already compressed data), where a zstd pass would only burn CPU."""
    sample = data[:COMPRESSION_SAMPLE]
    if len(zlib.compress(sample, 1)) > INCOMPRESSIBLE * len(sample):
        return raw_frame(data)
    return compress(data)


def compress(data: bytes) -> bytes:
    zstandard = _zstandard()
    if zstandard is None:
        return _zstd_command(["-1", "-qc"], data)
    return zstandard.ZstdCompressor(level=1).compress(data)


def decompress(blob: bytes) -> bytes:
    zstandard = _zstandard()
    if zstandard is None:
        return _zstd_command(["-dqc"], blob)
    # A frame from the `zstd` command (compressing a pipe) does not record the content size,
    # which the one-shot `decompress` requires.
    stream = zstandard.ZstdDecompressor().decompressobj()
    data = stream.decompress(blob)
    if not stream.eof or stream.unused_data:
        raise ValueError("truncated frame or trailing bytes")
    return data


def _zstd_command(options: list[str], data: bytes) -> bytes:
    result = subprocess.run(["zstd", *options], input=data, capture_output=True)
    if result.returncode != 0:
        raise ValueError(f"zstd {' '.join(options)}: {result.stderr.decode(errors='replace')}")
    return result.stdout


def verified_content(digest: str, blob: bytes) -> bytes:
    """The decompressed content of a stored chunk, or CorruptData if it is not `digest`."""
    try:
        data = decompress(blob)
    except MissingTool:
        raise
    except Exception as error:
        raise CorruptData(f"chunk {digest}: not a valid zstd frame ({error})") from error
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise CorruptData(f"chunk {digest}: content hashes to {actual}")
    return data


def _raw_block_payloads(blob: bytes) -> list[memoryview] | None:
    """The block payloads of `blob` if it is exactly one zstd frame of raw (stored) blocks.

    zstd stores incompressible data as raw blocks; hashing them in place skips the copy
    decompression makes. Anything unusual (dictionary, checksum, other block types, trailing
    bytes, sizes the format forbids) returns None and goes through the real decompressor.
    """
    view = memoryview(blob)
    if len(view) < 6 or bytes(view[:4]) != ZSTD_MAGIC:
        return None
    descriptor = view[4]
    if descriptor & 0x0F:  # reserved bit, content checksum or dictionary id present
        return None
    single_segment = bool(descriptor & 0x20)
    size_field = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
    position = 5
    window = None
    if not single_segment:
        exponent, mantissa = view[5] >> 3, view[5] & 7
        base = 1 << (10 + exponent)
        window = base + base // 8 * mantissa
        position = 6
    content_size = int.from_bytes(view[position : position + size_field], "little")
    if size_field == 2:
        content_size += 256
    position += size_field
    limit = min(ZSTD_MAX_BLOCK, window if window is not None else content_size)
    payloads: list[memoryview] = []
    total = 0
    last = False
    while not last:
        if position + 3 > len(view):
            return None
        header = int.from_bytes(view[position : position + 3], "little")
        last, kind, size = bool(header & 1), (header >> 1) & 3, header >> 3
        position += 3
        if kind != 0 or size > limit or position + size > len(view):
            return None
        payloads.append(view[position : position + size])
        position += size
        total += size
    if position != len(view) or (size_field and total != content_size):
        return None
    return payloads


def verify_chunk(digest: str, blob: bytes) -> None:
    """Raise CorruptData unless `blob` is a zstd frame whose content hashes to `digest`."""
    payloads = _raw_block_payloads(blob)
    if payloads is None:
        verified_content(digest, blob)
        return
    content_hash = hashlib.sha256()
    for payload in payloads:
        content_hash.update(payload)
    actual = content_hash.hexdigest()
    if actual != digest:
        raise CorruptData(f"chunk {digest}: content hashes to {actual}")


# Store directories this run made or found (a helper run is one operation, so none goes away).
_STORE_DIRS: set[Path] = set()


def _put_chunk(root: Path, digest: str, blob: bytes) -> None:
    target = chunk_path(root, digest)
    if target.parent not in _STORE_DIRS:
        target.parent.mkdir(parents=True, exist_ok=True)
        _STORE_DIRS.add(target.parent)
    temporary = target.with_name(f".{digest}.{uuid.uuid4().hex}")
    temporary.write_bytes(blob)
    os.replace(temporary, target)


# Called for every chunk a snapshot cuts: digest, content size, and the stored frame when this
# snapshot wrote it (None when the store already held it).
OnChunk = Callable[[str, int, "bytes | None"], None]


def _store_file(root: Path, path: Path, on_chunk: OnChunk | None) -> dict:
    chunks = []
    file_hash = hashlib.sha256()
    if path.stat().st_size == 0:
        return {"sha256": file_hash.hexdigest(), "chunks": chunks}

    def store(data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        file_hash.update(data)
        blob = None
        if not chunk_path(root, digest).exists():
            blob = encode_chunk(data)
            _put_chunk(root, digest, blob)
        if on_chunk is not None:
            on_chunk(digest, len(data), blob)
        chunks.append([digest, len(data)])

    with (
        path.open("rb") as handle,
        mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm,
        InOrder(store) as worker,
    ):
        for offset, length in iter_chunk_spans(mm, DEFAULT_CHUNKS):
            worker.put(mm[offset : offset + length])
    return {"sha256": file_hash.hexdigest(), "chunks": chunks}


class InOrder:
    """Runs `call(item)` for each item put, in order, in one background thread.

    Why: cutting chunks holds the GIL (big-integer arithmetic) while hashing, file writes and
    writes to `ssh`'s pipe release it, so hashing and storing chunk n overlaps with cutting
    chunk n+1. At most CHUNKS_IN_FLIGHT items wait; the first error is raised on leaving."""

    def __init__(self, call: Callable[[bytes], None]) -> None:
        self.call = call
        self.items: queue.Queue[bytes | None] = queue.Queue(CHUNKS_IN_FLIGHT)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> InOrder:
        self.thread.start()
        return self

    def put(self, item: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.items.put(item)

    def _run(self) -> None:
        while (item := self.items.get()) is not None:
            if self.error is None:  # after an error, only drain: `put` must not block
                try:
                    self.call(item)
                except BaseException as error:
                    self.error = error

    def __exit__(self, *exc: object) -> None:
        self.items.put(None)
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


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


def snapshot(shard: Shard, on_chunk: OnChunk | None = None, move_id: str = "") -> bytes:
    """Chunk the files changed since the last snapshot; return the canonical manifest JSON.
    `on_chunk` sees each chunk as it is cut (not those of unchanged files). Files that move
    `move_id` sent whole and that are unchanged since are listed whole (no chunks)."""
    if not shard.state.is_dir():
        raise HelperError(f"shard {shard.id} has no state directory {shard.state}")
    cache_path = shard.dir / "snapshot-cache.json"
    cache = _load_cache(cache_path)
    sent_whole = _load_cache(_sent_whole_path(shard, move_id)) if move_id else {}
    racy_after = time.time_ns() - RACY_NS
    files, fresh = [], {}
    for relative, path in _state_files(shard.state):
        info = path.stat()
        identity = _identity(info)
        whole = sent_whole.get(relative)
        if whole and whole["identity"] == identity:
            files.append({"path": relative, "mode": info.st_mode & 0o7777, "size": info.st_size,
                          "sha256": whole["sha256"], "chunks": [], "whole": True})  # fmt: skip
            continue
        cached = cache.get(relative)
        if cached and cached["identity"] == identity:
            entry = cached["entry"]
        else:
            entry = _store_file(shard.root, path, on_chunk)
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
        data = verified_content(digest, chunk_path(root, digest).read_bytes())
    except FileNotFoundError:
        raise CorruptData(f"file {file_path}: chunk {digest} missing from the store") from None
    except CorruptData as error:
        # Drop it, so the store reports it missing and the next transfer sends it again.
        chunk_path(root, digest).unlink(missing_ok=True)
        raise CorruptData(f"file {file_path}: {error}") from None
    if len(data) != size:
        chunk_path(root, digest).unlink(missing_ok=True)
        raise CorruptData(f"file {file_path}: chunk {digest} has {len(data)} bytes, not {size}")
    return data


class Writeback:
    """Writes to an unbuffered file, with `fdatasync` running in a thread every SYNC_EVERY
    bytes, so that the disk writes back while the restore goes on reading and hashing chunks
    (rather than one long fsync at the end); leaving the block fsyncs the rest."""

    def __init__(self, out: io.FileIO) -> None:
        self.out = out
        self.unsynced = 0
        self.wanted = threading.Event()
        self.closing = False
        self.error: OSError | None = None
        self.thread = threading.Thread(target=self._sync, daemon=True)

    def __enter__(self) -> Writeback:
        self.thread.start()
        return self

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[self.out.write(view) :]
        self.unsynced += len(data)
        if self.unsynced >= SYNC_EVERY:
            self.unsynced = 0
            self.wanted.set()

    def _sync(self) -> None:
        while self.wanted.wait() and not self.closing:
            self.wanted.clear()
            try:
                os.fdatasync(self.out.fileno())
            except OSError as error:
                self.error = error
                return

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self.closing = True
        self.wanted.set()
        self.thread.join()
        if kind is None:
            if self.error is not None:
                raise self.error
            os.fsync(self.out.fileno())


def _chunk_pieces(root: Path, digest: str, size: int, file_path: str) -> list:
    """A stored chunk's content, not yet hashed: its raw blocks in place, else decompressed.
    The restore hashes each file once instead; `_drop_corrupt_chunks` finds the culprit."""
    try:
        blob = chunk_path(root, digest).read_bytes()
    except FileNotFoundError:
        raise CorruptData(f"file {file_path}: chunk {digest} missing from the store") from None
    pieces = _raw_block_payloads(blob)
    if pieces is None or sum(map(len, pieces)) != size:
        # Compressed, damaged or the wrong size: the verifying path names what is wrong.
        pieces = [_read_chunk(root, digest, size, file_path)]
    return pieces


def _drop_corrupt_chunks(root: Path, entry: dict) -> None:
    """Raise CorruptData for the first chunk of a file that failed its hash (dropping it from
    the store, so the next transfer sends it again)."""
    for digest, size in entry["chunks"]:
        _read_chunk(root, digest, size, entry["path"])
    raise CorruptData(f"file {entry['path']}: content does not match its hash")


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_all(paths: list[Path]) -> None:
    """fsync every file, many at once: the file system commits its journal once for a group
    of waiting fsyncs (1024 files: 0.05 s this way, 3 s one after another). Plain threads:
    concurrent.futures would add its imports to every helper run's start."""
    pending: queue.SimpleQueue[Path] = queue.SimpleQueue()
    for path in paths:
        pending.put(path)
    errors: list[OSError] = []

    def sync_some() -> None:
        while not errors:
            try:
                path = pending.get_nowait()
            except queue.Empty:
                return
            try:
                _fsync(path)
            except OSError as error:
                errors.append(error)

    syncers = [threading.Thread(target=sync_some) for _ in range(min(FSYNC_THREADS, len(paths)))]
    for syncer in syncers:
        syncer.start()
    for syncer in syncers:
        syncer.join()
    if errors:
        raise errors[0]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while data := handle.read(READ_SIZE):
            digest.update(data)
    return digest.hexdigest()


def restore(shard: Shard, manifest: bytes, expected: str, full_verify: bool) -> dict:
    """Rebuild `state/` from the manifest: files restored earlier and unchanged since are
    hard-linked (their hash was verified when written), the rest is written from the stored
    chunks and hashed once per file (a mismatch is traced to its chunk); the new tree replaces
    the old one only when everything matched."""
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
            relative = _safe_relative(entry["path"])
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
            elif entry.get("whole"):
                raise CorruptData(f"file {relative}: sent whole but not held here as sent")
            else:
                file_hash = hashlib.sha256()
                with destination.open("wb", buffering=0) as out, Writeback(out) as writeback:
                    for digest, size in entry["chunks"]:
                        for piece in _chunk_pieces(shard.root, digest, size, relative):
                            writeback.write(piece)
                            file_hash.update(piece)
                if file_hash.hexdigest() != entry["sha256"]:
                    _drop_corrupt_chunks(shard.root, entry)
                written += 1
            os.chmod(destination, entry["mode"])
            fresh[relative] = [entry["sha256"], *_restored_identity(destination.stat())]
            total += entry["size"]
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _replace_state(shard, staging)
    _write(cache_path, json.dumps(fresh))
    return {"files": len(fresh), "bytes": total, "written": written, "reused": reused}


def _replace_state(shard: Shard, staging: Path) -> None:
    previous = shard.dir / ".state.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if shard.state.exists():
        os.replace(shard.state, previous)
    os.replace(staging, shard.state)
    shutil.rmtree(previous, ignore_errors=True)


# --- host-to-host transfer ----------------------------------------------------------------

MOVE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
ADDRESS = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,252}")
USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
FRAME_HEADER_MAX = 100
WHOLE_HEADER_MAX = 8192
PIPE_BYTES = 1 << 20  # the default /proc/sys/fs/pipe-max-size
PROGRESS_EVERY = 2 << 20
# A zstd frame is never larger than its content plus this (the format's compress bound).
FRAME_OVERHEAD = 1024


def missing(root: Path, digests: list[str]) -> list[str]:
    return [digest for digest in digests if not chunk_path(root, digest).exists()]


def _read_digests(lines: list[bytes]) -> list[str]:
    digests = [line.strip().decode("ascii", "replace") for line in lines if line.strip()]
    bad = [digest for digest in digests if not HASH.fullmatch(digest)]
    if bad:
        raise HelperError(f"not chunk hashes: {bad[:3]}")
    return digests


def _sized_digests(lines: list[str]) -> dict[str, int]:
    """`<sha256> <content size>` lines, as the broker writes a move's `send` and `expected`."""
    sized: dict[str, int] = {}
    for line in lines:
        digest, size = line.split()
        sized[_read_digests([digest.encode()])[0]] = int(size)
    return sized


def move_dir(root: Path, move_id: str) -> Path:
    if not MOVE_ID.fullmatch(move_id):
        raise HelperError(f"invalid move id {move_id!r}")
    return root / "moves" / move_id


def _checked(pattern: re.Pattern[str], value: str, name: str) -> str:
    if not pattern.fullmatch(value):
        raise HelperError(f"invalid {name} {value!r}")
    return value


def ssh_command(moves: Path, args: argparse.Namespace, keepalive: int) -> list[str]:
    """OpenSSH `ssh` to the target with only this move's key, certificate and pinned key."""
    return [
        "ssh", "-F", "/dev/null", "-i", str(moves / "key"),
        "-o", f"CertificateFile={moves / 'key-cert.pub'}", "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none", "-o", f"UserKnownHostsFile={moves / 'known_hosts'}",
        "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        "-o", f"ServerAliveInterval={keepalive}", "-o", "ServerAliveCountMax=3",
        "-o", "Ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com",
        "-p", str(args.to_port), "-l", _checked(USER, args.to_user, "user"),
        "--", _checked(ADDRESS, args.to_address, "address"), "receive",
    ]  # fmt: skip


class _Stream:
    """Frames (`<digest> <length>` line, then the stored zstd frame) into `ssh`'s stdin, with a
    progress line to the broker every PROGRESS_EVERY bytes sent or cut (so that a snapshot
    cutting chunks the target already holds still shows it is alive)."""

    def __init__(self, process: subprocess.Popen, root: Path) -> None:
        assert process.stdin is not None
        self.pipe = process.stdin
        self.root = root
        self.done: set[str] = set()
        self.chunks = self.bytes = self.content = self.cut = self.reported = 0

    def send(self, digest: str, size: int, blob: bytes | None = None) -> None:
        if digest in self.done:
            return
        self.done.add(digest)
        if blob is None:
            try:
                blob = chunk_path(self.root, digest).read_bytes()
            except FileNotFoundError:
                raise CorruptData(f"chunk {digest} missing from the source's store") from None
        self.pipe.write(f"{digest} {len(blob)}\n".encode())
        self.pipe.write(blob)
        self.chunks += 1
        self.bytes += len(blob)
        self.content += size
        self.report()

    def report(self, final: bool = False) -> None:
        if self.bytes + self.cut - self.reported >= PROGRESS_EVERY or final:
            _emit({"progress": self.bytes, "cut": self.cut})
            self.reported = self.bytes + self.cut


def _stream_snapshot(shard: Shard, stream: _Stream, have: set[str], move_id: str) -> bytes:
    """Snapshot the shard, sending each chunk the target lacks as soon as it is cut (then
    those of files unchanged since the last snapshot); returns the manifest."""

    def on_chunk(digest: str, size: int, blob: bytes | None) -> None:
        stream.cut += size
        if digest in have:
            stream.report()
        else:
            stream.send(digest, size, blob)

    manifest = snapshot(shard, on_chunk, move_id)
    stream.done |= have
    for entry in json.loads(manifest)["files"]:
        for digest, size in entry["chunks"]:
            stream.send(digest, size)
    return manifest


def push(shard: Shard, args: argparse.Namespace) -> dict:
    """Send chunks to the target over OpenSSH `ssh`: those listed in the move's `send` file,
    or with --snapshot, every chunk of a new snapshot not in the move's `have` file (the
    target's store), each sent while the snapshot goes on cutting; or with --whole, every
    state file raw (the first copy to a target whose store holds little)."""
    moves = move_dir(shard.root, args.move)
    have: set[str] = set()
    digests: dict[str, int] = {}
    if args.snapshot:
        have = set(_read_digests((moves / "have").read_bytes().splitlines()))
    elif not args.whole:
        digests = _sized_digests((moves / "send").read_text().splitlines())
    keepalive = max(1, int(args.timeout / 3))
    started = time.monotonic()
    process = subprocess.Popen(
        ssh_command(moves, args, keepalive),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stream = _Stream(process, shard.root)
    _widen_pipe(stream.pipe)
    manifest = whole = None
    try:
        if args.whole:
            whole = _push_whole(shard, stream.pipe, args.move)
        elif args.snapshot:
            manifest = _stream_snapshot(shard, stream, have, args.move)
        else:
            for digest, size in digests.items():
                stream.send(digest, size)
        if whole is None:
            stream.report(final=True)
    except BrokenPipeError:
        pass  # the target ended the stream; its exit status and message say why
    except BaseException:
        process.kill()
        raise
    out, err = process.communicate()  # closes ssh's stdin: the end of the stream
    message = err.decode(errors="replace").strip()[-1500:]
    if process.returncode == EXIT_CORRUPT:
        raise CorruptData(f"target refused a chunk: {message}")
    if process.returncode == EXIT_MISSING_TOOL:
        raise MissingTool(f"on the target: {message}")
    if process.returncode != 0:
        raise HelperError(f"ssh to {args.to_address} exited {process.returncode}: {message}")
    sent = whole or {"chunks": stream.chunks, "bytes": stream.bytes, "content": stream.content}
    summary = {**sent, "seconds": time.monotonic() - started, "target": json.loads(out)}
    if manifest is not None:
        summary["manifest"] = manifest.decode("ascii")
    return summary


def _sent_whole_path(shard: Shard, move_id: str) -> Path:
    move_dir(shard.root, move_id)  # validates the id
    return shard.dir / f"sent-whole.{move_id}.json"


def _push_whole(shard: Shard, pipe: IO[bytes], move_id: str) -> dict:
    """The first-copy fast path: each state file raw (a JSON header line, the bytes, then the
    SHA-256 of what was read), no chunking. Files unchanged while read are recorded for the
    move, so its later snapshots list them whole instead of chunking them. The summary's
    `changed` is what a stat pass right after the last byte finds changed or new since sent
    (bytes): what the next round would send, without cutting a snapshot to find out."""
    if not shard.state.is_dir():
        raise HelperError(f"shard {shard.id} has no state directory {shard.state}")
    for stale in shard.dir.glob("sent-whole.*.json"):
        stale.unlink()
    racy_after = time.time_ns() - RACY_NS
    sent: dict[str, dict] = {}
    files = total = reported = 0

    def progress(count: int) -> None:
        nonlocal total, reported
        total += count
        if total - reported >= PROGRESS_EVERY:
            _emit({"progress": total, "cut": total})
            reported = total

    for relative, path in _state_files(shard.state):
        with path.open("rb", buffering=0) as handle:
            info = os.fstat(handle.fileno())
            header = {"path": relative, "size": info.st_size, "mode": info.st_mode & 0o7777}
            pipe.write(json.dumps(header).encode() + b"\n")
            digest, copied = _copy_hashed(handle, pipe.write, info.st_size, progress)
        if copied != info.st_size:
            raise HelperError(f"state file {path} shrank while being sent")
        pipe.write(f"{digest}\n".encode())
        files += 1
        identity = _identity(info)
        racy = max(info.st_mtime_ns, info.st_ctime_ns) > racy_after
        if not racy and _identity(path.stat()) == identity:
            sent[relative] = {"identity": identity, "sha256": digest}
    _emit({"progress": total, "cut": total})  # the last line, as the chunked stream ends
    _write(_sent_whole_path(shard, move_id), json.dumps(sent))
    return {
        "chunks": files,
        "bytes": total,
        "content": total,
        "changed": _changed_since(shard, sent),
    }


def _changed_since(shard: Shard, sent: dict[str, dict]) -> int:
    """Bytes of the state files that are new or changed since `sent` recorded them."""
    changed = 0
    for relative, path in _state_files(shard.state):
        with contextlib.suppress(FileNotFoundError):
            info = path.stat()
            if relative not in sent or sent[relative]["identity"] != _identity(info):
                changed += info.st_size
    return changed


def _copy_hashed(
    source: IO[bytes],
    write: Callable[[memoryview], object],
    size: int,
    on_block: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """Copy up to `size` bytes from `source` to `write` through a few reused buffers, the
    SHA-256 of the same buffers computed in a second thread (hashlib releases the GIL on
    large buffers, so hashing overlaps the reads and writes instead of adding to them).
    Returns the digest and the bytes copied (fewer when `source` ended early)."""
    free: queue.Queue[memoryview] = queue.Queue()
    for _ in range(COPY_BUFFERS):
        free.put(memoryview(mmap.mmap(-1, READ_SIZE)))  # page-aligned, as O_DIRECT needs
    filled: queue.Queue[tuple[memoryview, int] | None] = queue.Queue()
    file_hash = hashlib.sha256()

    def hash_blocks() -> None:
        while (item := filled.get()) is not None:
            buffer, count = item
            file_hash.update(buffer[:count])
            free.put(buffer)

    hasher = threading.Thread(target=hash_blocks, daemon=True)
    hasher.start()
    copied = 0
    try:
        while copied < size:
            buffer = free.get()
            count = source.readinto(buffer[: min(READ_SIZE, size - copied)]) or 0
            if not count:
                break
            filled.put((buffer, count))
            write(buffer[:count])
            copied += count
            if on_block is not None:
                on_block(count)
    finally:
        filled.put(None)
        hasher.join()
    return file_hash.hexdigest(), copied


def _receive_whole(shard: Shard, stream: IO[bytes], budget: int) -> dict:
    """Write the files a first-copy push sends into a new state tree, hashing each as it is
    written; the tree replaces `state/` only when every file matched its SHA-256 and the
    total stayed within `budget` bytes. The restore cache then lets later rounds' manifests
    name these files whole. The files are written past the page cache (`UncachedFile`) and
    synced together once all arrived (not every 32 MiB as a restore does): durable before the
    reply, so before any cutover can use them, and off the cutover's downtime."""
    if shard.pid() is not None:
        raise Fenced(f"shard {shard.id} is running here; refusing to replace its state")
    staging = shard.dir / ".state.next"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _widen_pipe(stream)
    fresh: dict[str, list] = {}
    total = 0
    # Headers count against the budget too, so empty files cannot be sent without end.
    wire = 0
    try:
        while header := stream.readline(WHOLE_HEADER_MAX):
            try:
                document = json.loads(header)
                relative, size, mode = document["path"], document["size"], document["mode"]
            except (ValueError, KeyError, TypeError):
                raise HelperError(f"bad file header {header[:80]!r}") from None
            destination = staging / _safe_relative(relative)
            if relative in fresh or destination.exists():
                raise HelperError(f"file {relative!r} sent twice")
            if type(size) is not int or size < 0 or type(mode) is not int:
                raise HelperError(f"file {relative!r}: bad size {size!r} or mode {mode!r}")
            wire += len(header) + size
            if wire > budget:
                raise HelperError(f"file {relative!r}: more than the {budget} bytes expected")
            destination.parent.mkdir(parents=True, exist_ok=True)
            with UncachedFile(destination) as out:
                actual, copied = _copy_hashed(stream, out.write, size)
            if copied != size:
                raise CorruptData(f"file {relative}: stream ended {size - copied} bytes short")
            sent_hash = stream.readline(FRAME_HEADER_MAX).strip().decode("ascii", "replace")
            if sent_hash != actual:
                raise CorruptData(f"file {relative}: hashes to {actual}, source sent {sent_hash!r}")
            os.chmod(destination, mode & 0o777)
            fresh[relative] = [sent_hash, *_restored_identity(destination.stat())]
            total += size
        _fsync_all([staging / relative for relative in fresh])
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _replace_state(shard, staging)
    _write(shard.dir / "restore-cache.json", json.dumps(fresh))
    return {"chunks": len(fresh), "bytes": total, "not_sent": 0}


class UncachedFile:
    """A new file written with O_DIRECT where the file system allows it (page-aligned buffers,
    whole blocks; the tail and any refused write go through the page cache). Why: on these
    hosts the kernel's copy into the page cache cost more CPU than everything else a receive
    does, and its writeback later more again; written directly, the data is on the disk when
    `write` returns and the receive's closing fsync finds little left to do."""

    def __init__(self, path: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        self.direct = bool(O_DIRECT)
        try:
            self.fd = os.open(path, flags | O_DIRECT, 0o666)
        except OSError:  # e.g. tmpfs: no O_DIRECT
            self.fd = os.open(path, flags, 0o666)
            self.direct = False

    def __enter__(self) -> UncachedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def write(self, data: memoryview) -> None:
        view = data
        if self.direct and len(view) % DIRECT_BLOCK:
            self._cached()
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except OSError as error:
                if not (self.direct and error.errno == errno.EINVAL):
                    raise
                self._cached()

    def _cached(self) -> None:
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~O_DIRECT)
        self.direct = False


def _widen_pipe(pipe: IO[bytes]) -> None:
    """Grow a bulk pipe's kernel buffer from 64 KiB: fewer wake-ups of the process on the
    other end per MiB (the first copy is bound by context switches among four processes)."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _safe_relative(relative: object) -> str:
    if not isinstance(relative, str) or any(
        part in ("", ".", "..") for part in relative.split("/")
    ):
        raise HelperError(f"unsafe path {relative!r}")
    return relative


def _claim_expected(moves: Path, move_id: str) -> list[str]:
    """Claim the move's `expected` file (so a second connection gets nothing): its lines."""
    claimed = moves / f"expected.{os.getpid()}"
    try:
        os.replace(moves / "expected", claimed)
    except FileNotFoundError:
        raise HelperError(f"move {move_id}: no transfer expected (or already used)") from None
    lines = claimed.read_text().splitlines()
    claimed.unlink()
    return lines


def receive(shard: Shard, args: argparse.Namespace) -> dict:
    """What the broker's `expected` file for this move allows: `whole <max bytes>`, the
    state's files sent whole (first copy); `stream <max bytes>`, any verified chunk until the
    budget is spent (a streamed snapshot); else exactly the chunks listed (`<digest> <size>`
    lines). Each chunk once, each verified."""
    lines = _claim_expected(move_dir(shard.root, args.move), args.move)
    mode, _, bound = lines[0].partition(" ") if lines else ("", "", "")
    if mode == "whole":
        return _receive_whole(shard, sys.stdin.buffer, int(bound))
    expected: dict[str, int] | None = None
    if mode == "stream":
        budget = int(bound)
    else:
        expected = _sized_digests(lines)
        budget = sum(size + (size >> 7) + FRAME_OVERHEAD for size in expected.values())
    seen: set[str] = set()
    received = written = 0
    stream = sys.stdin.buffer
    while header := stream.readline(FRAME_HEADER_MAX):
        try:
            digest, length_text = header.decode("ascii").split()
            length = int(length_text)
        except ValueError:
            raise HelperError(f"bad frame header {header[:80]!r}") from None
        if digest in seen or (expected is not None and digest not in expected):
            raise HelperError(f"chunk {digest[:64]!r} is not expected (or sent twice)")
        _read_digests([digest.encode()])
        seen.add(digest)
        size = expected[digest] if expected is not None else DEFAULT_CHUNKS.max_size
        if not 0 < length <= size + (size >> 7) + FRAME_OVERHEAD:
            raise CorruptData(f"chunk {digest}: frame of {length} bytes for {size} bytes")
        if written + length > budget:
            raise HelperError(f"move {args.move}: more than the {budget} bytes expected")
        blob = stream.read(length)
        if len(blob) != length:
            raise CorruptData(f"chunk {digest}: stream ended after {len(blob)} of {length} bytes")
        verify_chunk(digest, blob)
        if not chunk_path(shard.root, digest).exists():
            _put_chunk(shard.root, digest, blob)
        received += 1
        written += length
    not_sent = len(expected) - received if expected is not None else 0
    return {"chunks": received, "bytes": written, "not_sent": not_sent}


def inventory(root: Path, timeout: float) -> list[str]:
    """Every chunk hash in the host's store (a streamed snapshot skips these), once a
    running index of a parked state tree has finished (up to `timeout` seconds)."""
    _wait_for_indexing(root, timeout)
    store = root / "chunks"
    if not store.is_dir():
        return []
    return sorted(
        name
        for directory in os.scandir(store)
        if directory.is_dir()
        for name in os.listdir(directory.path)
        if HASH.fullmatch(name)
    )


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
    parser.add_argument("--move", default="")
    parser.add_argument("--to-address", default="")
    parser.add_argument("--to-port", type=int, default=22)
    parser.add_argument("--to-user", default="")
    parser.add_argument("--snapshot", action="store_true")
    parser.add_argument("--whole", action="store_true")
    parser.add_argument("--index", action="store_true")
    return parser


def _reuse_freed_memory() -> None:
    """Keep large allocations on glibc's heap instead of one fresh mmap each.

    Why: the bulk operations allocate and free chunk-sized bytes objects (hash blocks,
    chunks, frames) in a loop; glibc serves each with a new mapping whose pages the kernel
    zeroes on first touch, which cost about 40 % on top of chunking's user CPU. Other libcs
    (no `mallopt`) keep their default."""
    import ctypes  # only here: it slows every other (small, latency-bound) operation's start

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, HEAP_ALLOCATION_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, 4 * HEAP_ALLOCATION_MAX)


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv[1:])
        shard = Shard(args.root, args.shard_id)
        operation = args.operation
        if operation in BULK_OPERATIONS:
            _reuse_freed_memory()
        if operation in ("snapshot", "freeze-snapshot"):
            if operation == "freeze-snapshot":
                set_frozen(shard, True)
            sys.stdout.buffer.write(snapshot(shard, move_id=args.move))
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
            result = clean(shard, args.index)
        elif operation == "index":
            result = index_parked(shard.root, Path(args.state))
        elif operation == "health":
            result = health(shard, args.port, args.timeout)
        elif operation == "restore":
            result = restore(shard, sys.stdin.buffer.read(), args.digest, args.full_verify)
        elif operation == "handover":
            result = handover(shard, args)
        elif operation == "missing":
            wanted = _read_digests(sys.stdin.buffer.read().splitlines())
            result = {"missing": missing(shard.root, wanted)}
        elif operation == "inventory":
            result = {"chunks": inventory(shard.root, args.timeout)}
        elif operation == "push":
            result = push(shard, args)
        elif operation == "receive":
            result = receive(shard, args)
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
