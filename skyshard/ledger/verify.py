"""Verification of a ledger folder. In full: every entry's form, sequence number and signature
(following key rotations from a genesis key given from outside), every checkpoint against the
recomputed root, consistency between successive checkpoints, cosignatures by known cosigners
(with a quorum on the latest checkpoint), and anchors the log must still contain (checkpoints
and the last entry a client saw). Incrementally: only the entries after a verified state."""

from __future__ import annotations

import base64
import mmap
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from skyshard.ledger import ed25519
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.client import Mark
from skyshard.ledger.cosignature import Quorum
from skyshard.ledger.entry import KEY_ROTATION, EntryError, check_line, message_of_line
from skyshard.ledger.keys import KeyChain
from skyshard.ledger.log import (
    CHECKPOINT_DIR,
    LOG_FILE,
    LedgerError,
    TornTail,
    checkpoint_paths,
    iter_lines,
    last_line,
    read_torn_tail,
)
from skyshard.ledger.merkle import (
    HASH_SIZE,
    Frontier,
    MerkleTree,
    ProofError,
    leaf_hash,
    verify_consistency,
)
from skyshard.ledger.note import (
    Ed25519Verifier,
    NoteError,
    open_note,
)

_CHUNK_BYTES = 4 << 20
"""Full verification splits the log into chunks of about this many bytes (~15,000 entries)."""
_PARALLEL_BYTES = 16 << 20
"""Smaller logs are verified in this process: starting worker processes would cost more."""
_ROTATION_END = b'"type":"key_rotation"}\n'
"""How a key_rotation line ends: `type` is the last key of a canonical entry."""


@dataclass
class VerifyResult:
    entries: int = 0
    checkpoints: int = 0
    cosignatures: dict[int, list[str]] = field(default_factory=dict)
    first_bad_index: int | None = None
    bad_checkpoint: int | None = None
    reason: str | None = None
    torn_tail: TornTail | None = None
    root_hash: bytes = b""
    end_offset: int = 0
    uncovered: int = 0
    key_chain: KeyChain | None = field(default=None, repr=False)
    tree: MerkleTree | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        """The failure for people: which entry (if one is to blame) and why."""
        if self.first_bad_index is None:
            return str(self.reason)
        return f"entry {self.first_bad_index}: {self.reason}"

    def fail_at(self, index: int, reason: str) -> None:
        if self.first_bad_index is None or index < self.first_bad_index:
            self.first_bad_index, self.reason = index, reason


class LogKey(NamedTuple):
    """The key that must sign entries from `starts_at` on (until the next rotation)."""

    starts_at: int
    public_key: bytes
    key_id: str


def entry_failure(index: int, line: bytes, key: LogKey) -> tuple[dict[str, Any] | None, str | None]:
    """The fields of the line at `index` and, if it is bad, why: form, sequence number,
    signing key and signature (following a key_rotation is the caller's part)."""
    try:
        value = check_line(line)
    except EntryError as exc:
        return None, str(exc)
    if value["seq"] != index:
        seq = value["seq"]
        return value, f"seq is {seq}, expected {index} (entries deleted, inserted or reordered)"
    if value["key_id"] != key.key_id:
        return value, f"signed by key {value['key_id']}, but the active key is {key.key_id}"
    sig = value["sig"]
    if not ed25519.verify(key.public_key, message_of_line(line, sig), base64.b64decode(sig)):
        return value, "signature does not verify"
    return value, None


class ChunkOutcome(NamedTuple):
    leaf_hashes: bytes
    """The leaf hashes of the chunk's good lines, concatenated (up to `failure`)."""
    failure: tuple[int, str] | None


def check_chunk(
    path: str, start: int, end: int, first_index: int, keys: Sequence[LogKey]
) -> ChunkOutcome:
    """Check the lines in bytes [start, end) of the log, the first of them entry
    `first_index`, with the keys active from each index on; stops at the first bad entry.
    Runs in worker processes, so it takes and returns only plain, picklable values."""
    fd = os.open(path, os.O_RDONLY)
    try:
        lines = os.pread(fd, end - start, start).split(b"\n")[:-1]
    finally:
        os.close(fd)
    later = [key for key in keys if key.starts_at > first_index]
    key = [key for key in keys if key.starts_at <= first_index][-1]
    leaves = bytearray()
    for index, line in enumerate(lines, first_index):
        while later and later[0].starts_at <= index:
            key = later.pop(0)
        _, reason = entry_failure(index, line, key)
        if reason is not None:
            return ChunkOutcome(bytes(leaves), (index, reason))
        leaves += leaf_hash(line)
    return ChunkOutcome(bytes(leaves), None)


class _Chunk(NamedTuple):
    start: int
    end: int
    first_index: int


@dataclass
class _Plan:
    """The log's complete lines (up to byte `end`) cut into chunks, and the key_rotation
    lines among them with their indices."""

    chunks: list[_Chunk] = field(default_factory=list)
    rotations: list[tuple[int, bytes]] = field(default_factory=list)
    end: int = 0


def _plan(log_path: Path) -> _Plan:
    plan = _Plan()
    with log_path.open("rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return plan
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            plan.end = data.rfind(b"\n") + 1
            start, index = 0, 0
            while start < plan.end:
                end = data.find(b"\n", min(start + _CHUNK_BYTES, plan.end) - 1) + 1
                block = data[start:end]
                hit = block.find(_ROTATION_END)
                while hit >= 0:
                    line_start = block.rfind(b"\n", 0, hit) + 1
                    line_end = hit + len(_ROTATION_END) - 1
                    line_index = index + block.count(b"\n", 0, line_start)
                    plan.rotations.append((line_index, block[line_start:line_end]))
                    hit = block.find(_ROTATION_END, line_end)
                plan.chunks.append(_Chunk(start, end, index))
                index += block.count(b"\n")
                start = end
    return plan


def _follow_rotations(
    rotations: Sequence[tuple[int, bytes]], chain: KeyChain
) -> tuple[int, str] | None:
    """Apply the key_rotation lines to `chain` in order. A rotation line that is itself bad
    stops it (its chunk's check names the failure); one announcing no valid key is a
    failure here."""
    for index, line in rotations:
        active = chain.active
        value, reason = entry_failure(
            index, line, LogKey(0, active.public_key, active.key_id.hex())
        )
        if reason is not None or value is None or value["type"] != KEY_ROTATION:
            return None
        try:
            chain.rotate(index, value["payload"])
        except NoteError as exc:
            return index, f"invalid key_rotation: {exc}"
    return None


@dataclass(frozen=True)
class Anchors:
    """What a verifier knows from outside the folder it checks."""

    checkpoints: Sequence[str] = ()
    """Signed checkpoint notes the log must still contain (a client's cache, a --checkpoint)."""
    seen: Mark | None = None
    """The last entry a client saw appended: the log must still hold it, unchanged."""
    quorum: Quorum = field(default_factory=Quorum)
    """The pinned cosigners, and how many of them must have cosigned the latest checkpoint."""
    cosigned: str | None = None
    """A checkpoint note a client saw cosigned: the folder's copy must keep its cosignatures."""


class VerificationError(LedgerError):
    """The log fails verification at entry `index` (None when no one entry is to blame)."""

    def __init__(self, index: int | None, reason: str) -> None:
        self.index, self.reason = index, reason
        super().__init__(reason if index is None else f"entry {index}: {reason}")


def verify_ledger(
    directory: Path,
    genesis: Ed25519Verifier,
    anchors: Anchors = Anchors(),
    workers: int | None = None,
) -> VerifyResult:
    """Check everything in a ledger folder from `genesis`, the log's first key as known from
    outside it; the result names the first bad index and why."""
    directory = Path(directory)
    result = VerifyResult()
    log_path = directory / LOG_FILE
    if not log_path.exists():
        if checkpoint_paths(directory) or anchors.checkpoints or anchors.seen:
            result.fail_at(0, f"{log_path} is missing but checkpoints exist or were seen")
        return result
    chain, tree = KeyChain(genesis), MerkleTree()
    result.key_chain, result.tree = chain, tree
    _check_entries(log_path, chain, tree, result, workers or os.cpu_count() or 1)
    result.entries = tree.size
    result.root_hash = tree.root()
    result.torn_tail = read_torn_tail(log_path)
    if result.ok:
        _check_checkpoints(directory, chain, tree, anchors, result)
    if result.ok:
        _check_anchors(directory, chain, tree, anchors, result)
    return result


@dataclass(frozen=True)
class VerifiedState:
    """The first `mark.size` entries verified: their frontier, where they end in the file, and
    the key that must sign the next entry."""

    frontier: Frontier
    mark: Mark
    key: Ed25519Verifier

    @property
    def size(self) -> int:
        return self.mark.size

    @classmethod
    def of(cls, result: VerifyResult) -> VerifiedState:
        """The state a successful full verification reached."""
        assert result.ok and result.tree is not None and result.key_chain is not None
        tree = result.tree
        last = tree.leaf_hash_at(tree.size - 1) if tree.size else b""
        mark = Mark(tree.size, result.end_offset, last)
        return cls(tree.frontier(), mark, result.key_chain.active)

    def appended(self, lines: Sequence[bytes], key: Ed25519Verifier) -> VerifiedState:
        """This state after the caller itself appended `lines` (already newline-free)."""
        frontier = self.frontier.copy()
        for line in lines:
            frontier.append_leaf_hash(leaf_hash(line))
        offset = self.mark.offset + sum(len(line) + 1 for line in lines)
        last = leaf_hash(lines[-1]) if lines else self.mark.last_leaf
        return VerifiedState(frontier, Mark(frontier.size, offset, last), key)


def check_mark(log_path: Path, mark: Mark) -> None:
    """Refuse unless the log still holds entry `mark.size - 1`, unchanged, ending at
    `mark.offset`: cheap evidence that nothing before it was cut or rewritten in place."""
    if mark.size == 0:
        return
    fd = os.open(log_path, os.O_RDONLY)
    try:
        whole = os.fstat(fd).st_size >= mark.offset
        found = last_line(fd, mark.offset) if whole else None
        ends_line = whole and os.pread(fd, 1, mark.offset - 1) == b"\n"
    finally:
        os.close(fd)
    if found is None or not ends_line or leaf_hash(found[1]) != mark.last_leaf:
        raise VerificationError(
            mark.size - 1,
            f"{log_path} no longer holds entry {mark.size - 1} as verified or appended before "
            f"(ending at byte {mark.offset}): the log was truncated or rewritten",
        )


def extend_verified(
    log_path: Path, state: VerifiedState, roots: Mapping[int, bytes] | None = None
) -> VerifiedState:
    """Verify every complete line after `state` (form, seq, key, rotation, signature and the
    signed `roots` by tree size met on the way); raise VerificationError at the first bad one."""
    if not log_path.exists() and state.size == 0:
        return state
    check_mark(log_path, state.mark)
    roots = roots or {}
    chain, frontier = KeyChain(state.key), state.frontier.copy()
    offset, last = state.mark.offset, state.mark.last_leaf
    key = LogKey(0, state.key.public_key, state.key.key_id.hex())
    for start, line in iter_lines(log_path, state.mark.offset):
        index = frontier.size
        value, reason = entry_failure(index, line, key)
        if reason is not None:
            raise VerificationError(index, reason)
        if value is not None and value["type"] == KEY_ROTATION:
            try:
                new_key = chain.rotate(index, value["payload"])
            except NoteError as exc:
                raise VerificationError(index, f"invalid key_rotation: {exc}") from None
            key = LogKey(index + 1, new_key.public_key, new_key.key_id.hex())
        last = leaf_hash(line)
        frontier.append_leaf_hash(last)
        offset = start + len(line) + 1
        expected = roots.get(frontier.size)
        if expected is not None and frontier.root() != expected:
            raise VerificationError(
                None, f"the first {frontier.size} entries differ from their signed checkpoint"
            )
    return VerifiedState(frontier, Mark(frontier.size, offset, last), chain.active)


def stripped_cosignatures(directory: Path, quorum: Quorum, cosigned: str) -> str | None:
    """Why the folder's copy of `cosigned`, a checkpoint note seen cosigned before, lost any
    of those cosignatures or the quorum, or None."""
    checkpoint = Checkpoint.from_note(cosigned)
    path = directory / CHECKPOINT_DIR / f"{checkpoint.size}.note"
    if not path.exists():
        return f"{path} is missing, but checkpoint {checkpoint.size} was seen cosigned before"
    try:
        seen = quorum.cosigned_by(cosigned)
        names = quorum.cosigned_by(path.read_text())
    except NoteError as exc:
        return f"{path}: cosignature: {exc}"
    lost = [name for name in seen if name not in names]
    if lost:
        return (
            f"{path}: the cosignature(s) of {', '.join(lost)} seen on checkpoint "
            f"{checkpoint.size} before were removed"
        )
    return quorum.shortfall(checkpoint.size, names)


def _check_entries(
    log_path: Path, chain: KeyChain, tree: MerkleTree, result: VerifyResult, workers: int
) -> None:
    """Every entry, in chunks checked in parallel by worker processes (one per core): each
    parses, hashes and checks the signatures of its own lines, with the keys active at each
    index (the key_rotation lines are found and followed first). The first bad index is the
    smallest any chunk reports, so it does not depend on scheduling; the tree grows chunk by
    chunk, in order, while the rest are checked."""
    plan = _plan(log_path)
    first = _follow_rotations(plan.rotations, chain)
    keys = [LogKey(start, key.public_key, key.key_id.hex()) for start, key in chain.history]
    jobs = [(str(log_path), c.start, c.end, c.first_index, keys) for c in plan.chunks]
    pool = None
    if workers > 1 and len(jobs) > 1 and plan.end >= _PARALLEL_BYTES:
        context = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context)
    try:
        run = pool.map if pool else map
        outcomes = run(check_chunk, *zip(*jobs, strict=True)) if jobs else []
        for outcome in outcomes:
            if outcome.failure is not None and (first is None or outcome.failure < first):
                first = outcome.failure
            good = len(outcome.leaf_hashes) // HASH_SIZE
            if first is not None:
                good = min(good, first[0] - tree.size)
            tree.extend_leaf_hashes(outcome.leaf_hashes[: good * HASH_SIZE])
            if first is not None and tree.size == first[0]:
                break
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if first is not None:
        result.fail_at(*first)
    else:
        result.end_offset = plan.end


def _check_checkpoints(
    directory: Path, chain: KeyChain, tree: MerkleTree, anchors: Anchors, result: VerifyResult
) -> None:
    previous: Checkpoint | None = None
    for path in checkpoint_paths(directory):
        text = path.read_text()
        try:
            checkpoint = Checkpoint.from_note(text)
        except NoteError as exc:
            result.bad_checkpoint, result.reason = int(path.stem), f"{path}: {exc}"
            return
        failure = _checkpoint_failure(path, text, checkpoint, previous, chain, tree)
        if failure is None:
            try:
                result.cosignatures[checkpoint.size] = anchors.quorum.cosigned_by(text)
            except NoteError as exc:
                failure = f"{path}: cosignature: {exc}"
        if failure is not None:
            result.bad_checkpoint, result.reason = checkpoint.size, failure
            if checkpoint.size > tree.size:
                result.first_bad_index = tree.size
            return
        result.checkpoints += 1
        previous = checkpoint
    covered = previous.size if previous else 0
    result.uncovered = tree.size - covered
    if result.entries:
        shortfall = anchors.quorum.shortfall(covered, result.cosignatures.get(covered, []))
        if shortfall is not None:
            result.bad_checkpoint, result.reason = covered, shortfall


def _check_anchors(
    directory: Path, chain: KeyChain, tree: MerkleTree, anchors: Anchors, result: VerifyResult
) -> None:
    stored = checkpoint_paths(directory)
    latest_stored = int(stored[-1].stem) if stored else 0
    for note in anchors.checkpoints:
        try:
            checkpoint = Checkpoint.from_note(note)
            open_note(note, [chain.active_at(checkpoint.size)])
        except NoteError as exc:
            result.reason = f"trusted checkpoint: not signed by the log's key: {exc}"
            return
        if checkpoint.size > tree.size:
            result.fail_at(
                tree.size,
                f"the log has {tree.size} entries but checkpoint {checkpoint.size} was verified "
                "before: entries were removed (rollback or truncation)",
            )
            return
        if tree.root(checkpoint.size) != checkpoint.root_hash:
            result.reason = (
                f"fork: the first {checkpoint.size} entries differ from checkpoint "
                f"{checkpoint.size} verified before (root {checkpoint.root_hash.hex()})"
            )
            return
        if latest_stored < checkpoint.size:
            result.bad_checkpoint = checkpoint.size
            result.reason = (
                f"the folder's latest checkpoint is {latest_stored}, but checkpoint "
                f"{checkpoint.size} was verified before: checkpoints were rolled back"
            )
            return
    if anchors.cosigned is not None:
        failure = stripped_cosignatures(directory, anchors.quorum, anchors.cosigned)
        if failure is not None:
            result.bad_checkpoint = Checkpoint.from_note(anchors.cosigned).size
            result.reason = failure
            return
    seen = anchors.seen
    if seen is None or seen.size == 0:
        return
    if seen.size > tree.size:
        result.fail_at(
            tree.size,
            f"the log has {tree.size} entries but entry {seen.size - 1} was appended before: "
            "entries were removed (truncation)",
        )
    elif tree.leaf_hash_at(seen.size - 1) != seen.last_leaf:
        result.fail_at(seen.size - 1, "differs from the entry appended before")


def _checkpoint_failure(
    path: Path,
    text: str,
    checkpoint: Checkpoint,
    previous: Checkpoint | None,
    chain: KeyChain,
    tree: MerkleTree,
) -> str | None:
    if str(checkpoint.size) != path.stem:
        return f"{path}: file name says size {path.stem}, checkpoint says {checkpoint.size}"
    if checkpoint.size > tree.size:
        return (
            f"checkpoint {checkpoint.size} commits to more entries than the log has "
            f"({tree.size}): entries from {tree.size} on are missing"
        )
    if previous is not None and previous.origin != checkpoint.origin:
        return f"{path}: origin {checkpoint.origin!r} differs from {previous.origin!r}"
    try:
        open_note(text, [chain.active_at(checkpoint.size)])
    except NoteError as exc:
        return f"{path}: log signature: {exc}"
    recomputed = tree.root(checkpoint.size)
    if recomputed != checkpoint.root_hash:
        return (
            f"{path}: signed root {checkpoint.root_hash.hex()} differs from the root "
            f"recomputed from the log, {recomputed.hex()}"
        )
    if previous is not None:
        try:
            proof = tree.consistency_proof(previous.size, checkpoint.size)
            verify_consistency(
                previous.size, checkpoint.size, previous.root_hash, checkpoint.root_hash, proof
            )
        except ProofError as exc:
            return f"{path}: not consistent with checkpoint {previous.size}: {exc}"
    return None
