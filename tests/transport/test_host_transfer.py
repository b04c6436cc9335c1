"""Host-to-host snapshot transfer over real OpenSSH sshd hosts: content-defined chunks on the
host, chunks pushed by the source's `ssh` under a move-scoped certificate, and what that
certificate cannot do. Hosts run helpers with the broker's venv Python unless a test says
otherwise (the system `/usr/bin/python3` has no zstandard module)."""

from __future__ import annotations

import ctypes
import hashlib
import json
import mmap
import os
import random
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyshard.runtime import host_helper
from skyshard.runtime.client import ShardRuntime, ToolMissing
from skyshard.runtime.transfer import SendMode, send_between_hosts
from skyshard.transport.access import ACTIONS, AccessPolicy
from skyshard.transport.certificates import MoveGrant
from skyshard.transport.chunkstore import CorruptChunk
from skyshard.transport.ssh import ConnectionPool, RemoteCommandFailed, SshSettings
from tests.support.hosts import TestHost, certificate_ssh, shared_transfer_ca, start_host
from tests.support.sshd import require_sshd

OPERATOR = "ops"
SHARD = "kv-1"
SETTINGS = SshSettings(connect_timeout=5, command_timeout=120, attempts=2, backoff=0.05)
SYSTEM_PYTHON = "/usr/bin/python3"
USAGE = host_helper.EXIT_USAGE
POLICY = AccessPolicy.from_mapping({OPERATOR: [("*", ACTIONS)]})


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TestHost]]:
    require_sshd()
    started: dict[str, TestHost] = {}
    no_tools = tmp_path_factory.mktemp("no-tools-bin")
    try:
        for host_id in ("src", "dst"):
            started[host_id] = start_host(tmp_path_factory.mktemp(host_id), host_id, "prov")
        if Path(SYSTEM_PYTHON).exists():
            started["sys"] = start_host(
                tmp_path_factory.mktemp("sys"), "sys", "prov", python=SYSTEM_PYTHON
            )
            # Neither the zstandard module (system Python) nor a zstd command in PATH.
            started["bare"] = start_host(
                tmp_path_factory.mktemp("bare"), "bare", "prov", python=SYSTEM_PYTHON,
                environment={"PATH": str(no_tools)},
            )  # fmt: skip
        yield started
    finally:
        for host in started.values():
            host.sshd.stop()


@pytest.fixture
def runtimes(hosts: dict[str, TestHost], tmp_path: Path) -> Iterator[dict[str, ShardRuntime]]:
    """A runtime per host on a fresh root for this test."""
    with ConnectionPool(SETTINGS) as pool:
        made = {}
        for host_id, host in hosts.items():
            root = host.root / tmp_path.name
            root.mkdir()
            made[host_id] = ShardRuntime(host.session(POLICY, OPERATOR, pool), str(root))
        yield made


def state_dir(runtime: ShardRuntime) -> Path:
    return Path(runtime.root.text) / "shards" / SHARD / "state"


def write_state(runtime: ShardRuntime, files: dict[str, bytes]) -> None:
    state = state_dir(runtime)
    state.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (state / name).write_bytes(content)


def move(source: ShardRuntime, target: ShardRuntime, move_id: str):
    """Snapshot on the source, send what the target lacks host to host, restore there."""
    manifest = source.snapshot(SHARD)
    report = send_between_hosts(source, target, SHARD, SendMode.DELTA, manifest=manifest,
                                move_id=move_id, ca=shared_transfer_ca()[0])  # fmt: skip
    target.restore(manifest)
    for entry in manifest.files:
        assert (state_dir(target) / entry.path).read_bytes() == (
            state_dir(source) / entry.path
        ).read_bytes()
    return report


def test_inserted_bytes_resend_only_the_chunks_around_them(runtimes) -> None:
    source, target = runtimes["src"], runtimes["dst"]
    data = random.Random(1).randbytes(12 << 20)
    write_state(source, {"data.bin": data, "small.txt": b"hello\n"})
    first = move(source, target, "mv-1")
    assert first.chunks_sent > 20  # content-defined chunks of ~256 KiB, not one per file
    time.sleep(1.1)  # past the snapshot cache's "racily clean" second
    inserted = b"inserted in the middle" * 10
    write_state(source, {"data.bin": data[: 6 << 20] + inserted + data[6 << 20 :]})
    again = move(source, target, "mv-2")
    assert again.chunks_sent <= 2
    assert again.content_bytes_sent <= 2 * host_helper.DEFAULT_CHUNKS.max_size
    assert move(source, target, "mv-3").chunks_sent == 0


def stream(source: ShardRuntime, target: ShardRuntime, move_id: str, budget: int = 1 << 30):
    """A pre-copy round: the source snapshots and streams what the target's store lacks."""
    report = send_between_hosts(source, target, SHARD, SendMode.STREAM, move_id=move_id,
                                ca=shared_transfer_ca()[0], budget=budget)  # fmt: skip
    manifest = report.manifest
    assert manifest is not None
    target.restore(manifest)
    assert manifest.digest == source.snapshot(SHARD).digest
    for entry in manifest.files:
        assert (state_dir(target) / entry.path).read_bytes() == (
            state_dir(source) / entry.path
        ).read_bytes()
    return report


def test_streamed_snapshot_sends_only_what_the_target_store_lacks(runtimes) -> None:
    source, target = runtimes["src"], runtimes["dst"]
    data = random.Random(2).randbytes(8 << 20)
    write_state(source, {"data.bin": data, "log.txt": b"key=value\n" * 50_000})
    first = stream(source, target, "mv-1")
    assert first.chunks_sent == first.chunks_in_manifest > 20
    assert first.content_bytes_sent == len(data) + 500_000
    assert first.bytes_sent < first.content_bytes_sent  # the log compressed, the rest raw
    time.sleep(1.1)  # past the snapshot cache's "racily clean" second
    write_state(source, {"data.bin": data[: 3 << 20] + b"inserted" * 100 + data[3 << 20 :]})
    again = stream(source, target, "mv-2")
    assert 1 <= again.chunks_sent <= 2
    # Nothing changed: the files come from the source's snapshot cache, the chunks from the
    # target's store; nothing is sent.
    assert stream(source, target, "mv-3").chunks_sent == 0


def test_streamed_snapshot_beyond_the_budget_is_refused(runtimes) -> None:
    source, target = runtimes["src"], runtimes["dst"]
    write_state(source, {"data.bin": random.Random(3).randbytes(4 << 20)})
    with pytest.raises(RemoteCommandFailed, match="more than the 1048576 bytes expected"):
        stream(source, target, "mv-1", budget=1 << 20)
    assert len(list((Path(target.root.text) / "chunks").rglob("*/*"))) <= 5


def receive_frames(root: Path, expected: str, frames: bytes) -> subprocess.CompletedProcess:
    """The target's `receive` as the certificate's forced command runs it, fed `frames`."""
    moves = root / "moves" / "mv-1"
    moves.mkdir(parents=True)
    (moves / "expected").write_text(expected)
    command = [sys.executable, host_helper.__file__, "receive", str(root), SHARD, "--move", "mv-1"]
    return subprocess.run(command, input=frames, capture_output=True, timeout=60)


def frame(data: bytes) -> bytes:
    blob = host_helper.encode_chunk(data)
    return f"{hashlib.sha256(data).hexdigest()} {len(blob)}\n".encode() + blob


def test_streamed_receive_takes_each_verified_chunk_once(tmp_path: Path) -> None:
    one, two = random.Random(4).randbytes(5000), random.Random(5).randbytes(7000)
    taken = receive_frames(tmp_path / "a", "stream 100000\n", frame(one) + frame(two))
    assert taken.returncode == 0, taken.stderr
    # Raw frames: 9 bytes of frame header and 3 of block header around each chunk.
    assert json.loads(taken.stdout) == {"chunks": 2, "bytes": 12_000 + 2 * 12, "not_sent": 0}
    twice = receive_frames(tmp_path / "b", "stream 100000\n", frame(one) + frame(one))
    assert b"is not expected (or sent twice)" in twice.stderr
    lie = frame(one).replace(hashlib.sha256(one).hexdigest().encode(), b"0" * 64)
    lying = receive_frames(tmp_path / "c", "stream 100000\n", lie)
    assert lying.returncode == host_helper.EXIT_CORRUPT and b"content hashes to" in lying.stderr
    assert not list((tmp_path / "c" / "chunks").rglob("*/*"))


def test_first_copy_goes_whole_and_the_move_lists_unchanged_files_whole(runtimes) -> None:
    source, target = runtimes["src"], runtimes["dst"]
    data = random.Random(6).randbytes(6 << 20)
    write_state(source, {"data.bin": data, "small.txt": b"hello\n"})
    (state_dir(source) / "sub").mkdir()
    (state_dir(source) / "sub" / "log.txt").write_bytes(b"key=value\n" * 1000)
    time.sleep(1.1)  # past the "racily clean" second, so the send records the files
    ca = shared_transfer_ca()[0]
    report = send_between_hosts(source, target, SHARD, SendMode.WHOLE, move_id="mv-1", ca=ca,
                                budget=8 << 20)  # fmt: skip
    assert (report.chunks_sent, report.content_bytes_sent) == (3, len(data) + 6 + 10_000)
    for name in ("data.bin", "small.txt", "sub/log.txt"):
        assert (state_dir(target) / name).read_bytes() == (state_dir(source) / name).read_bytes()
    assert target.inventory(SHARD) == []  # no chunk cut on the critical path
    # The same move's next round lists the unchanged files whole: nothing to cut or send.
    (state_dir(source) / "small.txt").write_bytes(b"changed\n")
    again = send_between_hosts(source, target, SHARD, SendMode.STREAM, move_id="mv-1", ca=ca,
                               budget=8 << 20)  # fmt: skip
    manifest = again.manifest
    assert manifest is not None
    assert [e.path for e in manifest.files if e.whole] == ["data.bin", "sub/log.txt"]
    assert (again.chunks_sent, again.content_bytes_sent) == (1, 8)
    assert target.restore(manifest)["reused"] == 2
    assert (state_dir(target) / "small.txt").read_bytes() == b"changed\n"
    # Another move does not trust this move's record.
    assert not any(entry.whole for entry in source.snapshot(SHARD).files)
    # A file sent whole that no longer is what was sent is refused, not restored.
    (state_dir(target) / "data.bin").write_bytes(b"tampered")
    with pytest.raises(CorruptChunk, match=r"data\.bin: sent whole but not held here"):
        target.restore(manifest)


def test_clean_with_index_fills_the_store_before_inventory_answers(runtimes) -> None:
    source = runtimes["src"]
    write_state(source, {"data.bin": random.Random(7).randbytes(4 << 20)})
    source.clean(SHARD, index=True)
    assert not state_dir(source).exists()
    held = source.inventory(SHARD)
    assert len(held) > 8  # ~256 KiB chunks of 4 MiB, cut by the detached indexer
    assert not list((Path(source.root.text) / "indexing").iterdir())


def test_index_takes_only_a_parked_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "indexing").mkdir(parents=True)
    (root / "keep.txt").write_text("not a parked tree")
    for state in (root / "indexing" / "..", root / "elsewhere" / f"{SHARD}.{'0' * 32}"):
        argv = ["helper", "index", str(root), SHARD, "--state", str(state)]
        assert host_helper.main(argv) == host_helper.EXIT_USAGE
    assert (root / "keep.txt").exists()


def whole_file(path: str, data: bytes, size: int | None = None, sent: bytes | None = None):
    header = json.dumps({"path": path, "size": len(data) if size is None else size, "mode": 0o600})
    digest = hashlib.sha256(data if sent is None else sent).hexdigest()
    return header.encode() + b"\n" + data + digest.encode() + b"\n"


@pytest.mark.parametrize(
    ("stream", "status", "message"),
    [
        (whole_file("a.bin", b"x" * 900, sent=b"y" * 900), host_helper.EXIT_CORRUPT,
         b"a.bin: hashes to"),
        (whole_file("a.bin", b"x" * 500, size=900), host_helper.EXIT_CORRUPT,
         b"stream ended"),
        (whole_file("a.bin", b"x" * 2000), USAGE, b"more than the 1000 bytes expected"),
        (whole_file("../a.bin", b"x"), USAGE, b"unsafe path"),
        (whole_file("a.bin", b"x") * 2, USAGE, b"sent twice"),
        (b'{"path": "a.bin", "size": -1, "mode": 384}\n', USAGE, b"bad size"),
        (b"".join(whole_file(f"e{i}", b"") for i in range(40)), USAGE,
         b"more than the 1000 bytes expected"),
    ],
    ids=["corrupted", "short", "over-budget", "unsafe-path", "twice", "negative-size",
         "empty-files-without-end"],
)  # fmt: skip
def test_whole_receive_refuses_bad_streams(tmp_path: Path, stream, status, message) -> None:
    ok = receive_frames(tmp_path / "ok", "whole 1000\n", whole_file("a.bin", b"x" * 900))
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "ok" / "shards" / SHARD / "state" / "a.bin").read_bytes() == b"x" * 900
    refused = receive_frames(tmp_path / "bad", "whole 1000\n", stream)
    assert refused.returncode == status and message in refused.stderr, refused.stderr
    assert not (tmp_path / "bad" / "shards" / SHARD / "state").exists()
    assert not (tmp_path / "bad" / "shards" / SHARD / ".state.next").exists()


def moves_of(runtime: ShardRuntime, move_id: str = "mv-1") -> Path:
    return Path(runtime.root.text) / "moves" / move_id


def grant_for(
    target_rt: ShardRuntime, target: TestHost, move_id: str = "mv-1", **overrides: object
) -> MoveGrant:
    fields = {
        "move_id": move_id,
        "user": target.sshd.user,
        "source_address": "127.0.0.1",
        "force_command": target_rt.receive_command(SHARD, move_id).line,
        "valid_seconds": 600,
    }
    return MoveGrant(**{**fields, **overrides})


def run_ssh(command: list[str], remote: str) -> subprocess.CompletedProcess[str]:
    # The last argument is the command the client asks for; the certificate replaces it.
    return subprocess.run([*command[:-1], remote], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def test_certificate_runs_only_the_receive_command(runtimes, hosts, tmp_path: Path) -> None:
    source, target = runtimes["src"], runtimes["dst"]
    pwned = tmp_path / "pwned"
    command = certificate_ssh(moves_of(source), hosts["dst"], grant_for(target, hosts["dst"]))
    result = run_ssh(command, f"touch {pwned}; echo shell")
    assert result.returncode == host_helper.EXIT_USAGE, result.stderr
    assert "move mv-1: no transfer expected (or already used)" in result.stderr
    assert "shell" not in result.stdout and not pwned.exists()
    forwarding = run_ssh([*command[:-2], "-N", "-L", "0:127.0.0.1:22", *command[-2:]], "true")
    assert forwarding.returncode != 0


def test_expired_certificate_is_refused(runtimes, hosts) -> None:
    source, target = runtimes["src"], runtimes["dst"]
    grant = grant_for(target, hosts["dst"], valid_seconds=60)
    command = certificate_ssh(moves_of(source), hosts["dst"], grant, now=time.time() - 3600)
    result = run_ssh(command, "receive")
    assert result.returncode == 255 and "Permission denied" in result.stderr
    assert "Certificate invalid: expired" in hosts["dst"].sshd.log()


def test_certificate_for_another_source_address_is_refused(runtimes, hosts) -> None:
    source, target = runtimes["src"], runtimes["dst"]
    grant = grant_for(target, hosts["dst"], source_address="10.99.0.1")
    command = certificate_ssh(moves_of(source), hosts["dst"], grant)
    result = run_ssh(command, "receive")
    assert result.returncode == 255 and "Permission denied" in result.stderr
    assert "not from a permitted source address (127.0.0.1)" in hosts["dst"].sshd.log()


def test_a_used_transfer_cannot_be_repeated(runtimes, hosts) -> None:
    """The target claims the move's expected list on first use; the same certificate then
    finds nothing to receive, even within its validity."""
    source, target = runtimes["src"], runtimes["dst"]
    moves = Path(target.root.text) / "moves" / "mv-1"
    moves.mkdir(parents=True)
    (moves / "expected").write_text(f"{'a' * 64} 10\n")
    command = certificate_ssh(moves_of(source), hosts["dst"], grant_for(target, hosts["dst"]))
    first = subprocess.run(command, input=b"", capture_output=True, timeout=60)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(command, input=b"", capture_output=True, timeout=60)
    assert b"no transfer expected (or already used)" in second.stderr


def need_system_python_and_zstd() -> None:
    reason = None
    if not Path(SYSTEM_PYTHON).exists():
        reason = f"{SYSTEM_PYTHON} is missing"
    elif shutil.which("zstd") is None:
        reason = "the zstd command is missing (scripts/system-deps.sh installs it)"
    elif (
        subprocess.run([SYSTEM_PYTHON, "-c", "import zstandard"], capture_output=True).returncode
        == 0
    ):
        reason = f"{SYSTEM_PYTHON} has the zstandard module: the fallback would not run"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the zstd fallback tests: {reason}")
        pytest.skip(reason)


def compressible_and_random() -> dict[str, bytes]:
    text = b"".join(b"key-%d=value-%d\n" % (i, i * i) for i in range(200_000))
    return {"log.txt": text, "blob.bin": random.Random(5).randbytes(3 << 20)}


def test_hosts_without_zstandard_migrate_through_the_zstd_command(runtimes) -> None:
    need_system_python_and_zstd()
    source, target = runtimes["sys"], runtimes["src"]
    write_state(source, compressible_and_random())
    move(source, target, "mv-1")  # system Python compresses through `zstd`
    back = runtimes["sys"]
    shutil.rmtree(state_dir(back))
    shutil.rmtree(Path(back.root.text) / "chunks")
    move(target, back, "mv-2")  # ... and verifies and decompresses through it
    chunks = list((Path(back.root.text) / "chunks").rglob("*"))
    assert chunks, "the fallback host stored the chunks it received"


def test_neither_zstandard_nor_zstd_names_the_missing_tool(runtimes) -> None:
    need_system_python_and_zstd()
    bare, other = runtimes["bare"], runtimes["src"]
    write_state(bare, compressible_and_random())
    with pytest.raises(ToolMissing) as snapshot_error:
        bare.snapshot(SHARD)
    write_state(other, compressible_and_random())
    with pytest.raises(ToolMissing) as receive_error:
        move(other, bare, "mv-1")
    for error in (snapshot_error.value, receive_error.value):
        message = str(error)
        assert "neither the Python module zstandard" in message and "zstd command" in message
        assert "corrupt" not in message.lower() and "not a valid zstd frame" not in message


def test_whole_send_reports_what_changed_since_it_was_sent(tmp_path: Path) -> None:
    """The stat pass after a whole send: a file touched since it was sent, or one that could
    not be recorded (new), counts; an unchanged file does not (round 2 is skipped on it)."""
    shard = host_helper.Shard(tmp_path, SHARD)
    shard.state.mkdir(parents=True)
    (shard.state / "kept.bin").write_bytes(b"k" * 1000)
    (shard.state / "touched.bin").write_bytes(b"t" * 300)
    sent = {
        name: {"identity": host_helper._identity((shard.state / name).stat()), "sha256": "x"}
        for name in ("kept.bin", "touched.bin")
    }
    assert host_helper._changed_since(shard, sent) == 0
    time.sleep(0.01)
    (shard.state / "touched.bin").write_bytes(b"T" * 300)
    (shard.state / "new.bin").write_bytes(b"n" * 20)
    assert host_helper._changed_since(shard, sent) == 320


def dirty_pages(path: Path) -> int:
    """Pages of `path` in the page cache not yet written to disk (root: /proc/kpageflags)."""
    page = mmap.PAGESIZE
    with path.open("r+b") as handle, mmap.mmap(handle.fileno(), 0) as mapped:
        anchor = ctypes.c_char.from_buffer(mapped)
        base, count = ctypes.addressof(anchor), (len(mapped) + page - 1) // page
        del anchor
        for index in range(count):
            mapped[index * page]  # fault the page in, so pagemap names its frame
        with open("/proc/self/pagemap", "rb") as pagemap:
            pagemap.seek(base // page * 8)
            entries = struct.unpack(f"{count}Q", pagemap.read(8 * count))
    dirty = 0
    with open("/proc/kpageflags", "rb") as flags_file:
        for entry in entries:
            flags_file.seek((entry & ((1 << 55) - 1)) * 8)
            dirty += (struct.unpack("Q", flags_file.read(8))[0] >> 4) & 1  # KPF_DIRTY
    return dirty


@pytest.mark.skipif(os.geteuid() != 0, reason="reads /proc/kpageflags (root)")
def test_whole_receive_makes_its_files_durable_before_it_answers(tmp_path: Path) -> None:
    """Nothing synced while receiving; before it answers (and so before any cutover can use
    the files) every file is synced: no page of them is left dirty. The probe's own check:
    a plain write leaves dirty pages. Sizes not a multiple of 4 KiB end in the page cache
    even when the file system takes direct writes."""
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"p" * 100_000)
    assert dirty_pages(plain) > 0
    files = {f"f{index}.bin": random.Random(index).randbytes(300_000 + index) for index in range(8)}
    stream = b"".join(whole_file(name, data) for name, data in files.items())
    taken = receive_frames(tmp_path / "root", "whole 10000000\n", stream)
    assert taken.returncode == 0, taken.stderr
    state = tmp_path / "root" / "shards" / SHARD / "state"
    for name, data in files.items():
        assert (state / name).read_bytes() == data
        assert dirty_pages(state / name) == 0, name


def test_a_manifest_goes_with_delta_only(runtimes) -> None:
    source, target = runtimes["src"], runtimes["dst"]
    write_state(source, {"data.bin": b"d" * 1000})
    manifest = source.snapshot(SHARD)
    ca = shared_transfer_ca()[0]
    with pytest.raises(ValueError, match="mode DELTA only, not STREAM"):
        send_between_hosts(source, target, SHARD, SendMode.STREAM, manifest=manifest,
                           move_id="mv-1", ca=ca)  # fmt: skip
    with pytest.raises(ValueError, match="no manifest given"):
        send_between_hosts(source, target, SHARD, SendMode.DELTA, move_id="mv-1", ca=ca)
