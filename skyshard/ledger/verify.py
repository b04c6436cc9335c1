"""Full verification of a ledger folder: every entry's form, sequence number and signature
(following key rotations), every checkpoint against the recomputed root, consistency between
successive checkpoints, and cosignatures by known cosigners."""

from __future__ import annotations

import base64
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from skyshard.ledger import ed25519
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.cosignature import CosignatureVerifier
from skyshard.ledger.entry import KEY_ROTATION, EntryError, check_line, message_of_line
from skyshard.ledger.keys import KeyChain
from skyshard.ledger.log import (
    GENESIS_KEY_FILE,
    LOG_FILE,
    TornTail,
    checkpoint_paths,
    iter_lines,
    read_torn_tail,
    read_vkey,
)
from skyshard.ledger.merkle import MerkleTree, ProofError, leaf_hash, verify_consistency
from skyshard.ledger.note import (
    Ed25519Verifier,
    NoteError,
    open_note,
    parse_note,
    verified_signatures,
)

_CHUNK = 8192


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


class SignatureCheck(NamedTuple):
    line: bytes
    sig: str
    public_key: bytes


def first_bad_signature(first_index: int, checks: Sequence[SignatureCheck]) -> int | None:
    """Index of the first entry in a chunk whose signature does not verify, or None."""
    for offset, (line, sig, public_key) in enumerate(checks):
        if not ed25519.verify(public_key, message_of_line(line, sig), base64.b64decode(sig)):
            return first_index + offset
    return None


class _SignatureChecks:
    """Runs first_bad_signature on chunks in worker threads (libsodium, called through CFFI,
    verifies without holding the GIL), or inline with one worker."""

    def __init__(self, workers: int) -> None:
        self._pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="ledger-verify") if workers > 1 else None
        )
        self._workers = workers
        self._pending: deque[Future] = deque()
        self.failures: list[int] = []

    def submit(self, first_index: int, checks: list[SignatureCheck]) -> None:
        if self._pool is None:
            self._record(first_bad_signature(first_index, checks))
            return
        self._pending.append(self._pool.submit(first_bad_signature, first_index, checks))
        while len(self._pending) > 2 * self._workers:
            self._record(self._pending.popleft().result())

    def finish(self) -> None:
        while self._pending:
            self._record(self._pending.popleft().result())
        if self._pool is not None:
            self._pool.shutdown()

    def _record(self, failure: int | None) -> None:
        if failure is not None:
            self.failures.append(failure)


def verify_ledger(
    directory: Path,
    genesis: Ed25519Verifier | None = None,
    cosigners: Sequence[CosignatureVerifier] = (),
    workers: int | None = None,
) -> VerifyResult:
    """Check everything in a ledger folder; the result names the first bad index and why."""
    directory = Path(directory)
    result = VerifyResult()
    genesis = genesis or read_vkey(directory / GENESIS_KEY_FILE)
    log_path = directory / LOG_FILE
    if not log_path.exists():
        if checkpoint_paths(directory):
            result.fail_at(0, f"{log_path} is missing but checkpoints exist")
        return result
    if genesis is None:
        result.reason = f"{directory / GENESIS_KEY_FILE} is missing: pass the log's verifier key"
        return result
    chain, tree = KeyChain(genesis), MerkleTree()
    result.key_chain, result.tree = chain, tree
    _check_entries(log_path, chain, tree, result, workers or os.cpu_count() or 1)
    result.entries = tree.size
    result.root_hash = tree.root()
    result.torn_tail = read_torn_tail(log_path)
    if result.ok:
        _check_checkpoints(directory, chain, tree, cosigners, result)
    return result


def _check_entries(
    log_path: Path, chain: KeyChain, tree: MerkleTree, result: VerifyResult, workers: int
) -> None:
    signatures = _SignatureChecks(workers)
    chunk: list[SignatureCheck] = []
    try:
        for index, (_, line) in enumerate(iter_lines(log_path)):
            check, reason = _check_entry(index, line, chain)
            if reason is not None:
                result.fail_at(index, reason)
                break
            tree.append_leaf_hash(leaf_hash(line))
            chunk.append(check)
            if len(chunk) == _CHUNK:
                signatures.submit(tree.size - _CHUNK, chunk)
                chunk = []
        if chunk:
            signatures.submit(tree.size - len(chunk), chunk)
    finally:
        signatures.finish()
    for bad_index in signatures.failures:
        result.fail_at(bad_index, "signature does not verify")
    if result.first_bad_index is not None and tree.size > result.first_bad_index:
        # Everything from the first bad entry on is untrusted: roots cover the good prefix.
        trimmed = MerkleTree()
        for i in range(result.first_bad_index):
            trimmed.append_leaf_hash(tree.leaf_hash_at(i))
        result.tree = trimmed


def _check_entry(index: int, line: bytes, chain: KeyChain) -> tuple[SignatureCheck, str | None]:
    """Form, sequence, key and rotation checks, which depend on order; the signature check
    it returns runs in parallel later."""
    active = chain.active
    try:
        value = check_line(line)
    except EntryError as exc:
        return SignatureCheck(line, "", active.public_key), str(exc)
    check = SignatureCheck(line, value["sig"], active.public_key)
    if value["seq"] != index:
        seq = value["seq"]
        return check, f"seq is {seq}, expected {index} (entries deleted, inserted or reordered)"
    if value["key_id"] != active.key_id.hex():
        key_id = value["key_id"]
        return check, f"signed by key {key_id}, but the active key is {active.key_id.hex()}"
    if value["type"] == KEY_ROTATION:
        try:
            chain.rotate(index, value["payload"])
        except NoteError as exc:
            return check, f"invalid key_rotation: {exc}"
    return check, None


def _check_checkpoints(
    directory: Path,
    chain: KeyChain,
    tree: MerkleTree,
    cosigners: Sequence[CosignatureVerifier],
    result: VerifyResult,
) -> None:
    previous: Checkpoint | None = None
    for path in checkpoint_paths(directory):
        text = path.read_text()
        try:
            checkpoint = Checkpoint.from_note(text)
        except NoteError as exc:
            result.bad_checkpoint, result.reason = int(path.stem), f"{path}: {exc}"
            return
        failure = _checkpoint_failure(path, text, checkpoint, previous, chain, tree, cosigners)
        if failure is not None:
            result.bad_checkpoint, result.reason = checkpoint.size, failure
            if checkpoint.size > tree.size:
                result.first_bad_index = tree.size
            return
        result.cosignatures[checkpoint.size] = _verified_cosigners(text, cosigners)
        result.checkpoints += 1
        previous = checkpoint


def _checkpoint_failure(
    path: Path,
    text: str,
    checkpoint: Checkpoint,
    previous: Checkpoint | None,
    chain: KeyChain,
    tree: MerkleTree,
    cosigners: Sequence[CosignatureVerifier],
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
    try:
        verified_signatures(parse_note(text), cosigners)
    except NoteError as exc:
        return f"{path}: cosignature: {exc}"
    return None


def _verified_cosigners(text: str, cosigners: Sequence[CosignatureVerifier]) -> list[str]:
    return [s.name for s in verified_signatures(parse_note(text), cosigners)]
