"""A general transparency log: signed, append-only entries in an RFC 6962 Merkle tree with
C2SP checkpoints, cosignatures and key rotation. It knows nothing of what its entries mean
(skyshard's event types live in `skyshard.trust.events`).

`Ledger` is what the rest of skyshard calls; the modules beside it are named after the
RFC 6962 / C2SP concepts they implement.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from skyshard.config import paths
from skyshard.config.policy import LedgerPolicy
from skyshard.config.sky import sky_policy
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.client import CachedCheckpoint, ClientStore, Mark
from skyshard.ledger.cosignature import CosignatureVerifier, Quorum
from skyshard.ledger.ed25519 import SigningKey
from skyshard.ledger.entry import KEY_ROTATION, Entry, make_entry, parse_line, utc_timestamp
from skyshard.ledger.keys import (
    KEY_SUFFIX,
    load_or_create_signing_key,
    load_signing_key,
    rotation_payload,
    write_signing_key,
)
from skyshard.ledger.log import (
    ACTIVE_KEY_FILE,
    GENESIS_KEY_FILE,
    LOG_FILE,
    AppendOnlyLog,
    LedgerError,
    Record,
    iter_lines,
    latest_checkpoint_note,
    read_entries,
    read_vkey,
)
from skyshard.ledger.merkle import Frontier, leaf_hash, verify_inclusion
from skyshard.ledger.note import Ed25519Signer, Ed25519Verifier, NoteError, open_note, sign_note
from skyshard.ledger.verify import (
    Anchors,
    VerificationError,
    VerifiedState,
    VerifyResult,
    check_mark,
    extend_verified,
    stripped_cosignatures,
    verify_ledger,
)

DEFAULT_ORIGIN = "skyshard.local/ledger"
LEDGER_KEY_NAME = "ledger"


@dataclass(frozen=True)
class InclusionProof:
    """Proof that entry `seq` is leaf `seq` of the tree in `checkpoint`."""

    seq: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]
    root_hash: bytes
    checkpoint: str

    def verify(self) -> None:
        verify_inclusion(self.seq, self.tree_size, self.leaf_hash, self.hashes, self.root_hash)


class Ledger:
    """Append entries, sign checkpoints, prove inclusion and read verified entries for one
    ledger folder. Nothing is signed or read that has not been verified first: every append
    and checkpoint verifies the entries since the last verified checkpoint (kept in memory and
    in the client store) and every checkpoint, read and a process's first append check that
    the rest still hashes to that checkpoint's signed root."""

    def __init__(
        self,
        directory: Path,
        signer: Ed25519Signer,
        key_path: Path | None = None,
        client: ClientStore | None = None,
        quorum: Quorum | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.signer = signer
        self.client = client or ClientStore(paths.ledger_client_dir(self.directory))
        self.quorum = quorum or Quorum()
        self._key_path = key_path
        self._log = AppendOnlyLog(self.directory)
        self._state: VerifiedState | None = None
        self._prefix_checked = False

    @classmethod
    def open(
        cls,
        directory: Path | None = None,
        signer: Ed25519Signer | None = None,
        *,
        keys_dir: Path | None = None,
        origin: str = DEFAULT_ORIGIN,
        quorum: Quorum | None = None,
    ) -> Ledger:
        """Open (or create) a ledger; without `signer` the key is `<keys>/ledger.ed25519`,
        created on first use; without `quorum`, the cosigners and quorum of policy.yaml."""
        directory = Path(directory) if directory else paths.ledger_dir()
        quorum = quorum or policy_quorum(sky_policy().ledger)
        if signer is not None:
            return cls(directory, signer, quorum=quorum)
        key_path = Path(keys_dir or paths.keys_dir()) / f"{LEDGER_KEY_NAME}{KEY_SUFFIX}"
        _finish_interrupted_rotation(directory, key_path, origin)
        signer = Ed25519Signer(origin, load_or_create_signing_key(key_path))
        return cls(directory, signer, key_path, quorum=quorum)

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def log_path(self) -> Path:
        return self.directory / LOG_FILE

    def verifier(self) -> Ed25519Verifier:
        return self.signer.verifier()

    def append(
        self, type: str, run_id: str, actor: str, payload: dict[str, Any] | None = None
    ) -> Entry:
        return self.append_many([Record(type, run_id, actor, payload or {})])[0]

    def append_many(self, records: Sequence[Record | tuple]) -> list[Entry]:
        """Verify what is new in the log, then sign and durably append `records` with one
        write and one fsync (group commit)."""
        records = [Record(*r) for r in records]
        rotations = [i for i, r in enumerate(records) if r.type == KEY_ROTATION]
        if rotations and rotations != [len(records) - 1]:
            raise LedgerError("a key_rotation must be the last record of its batch")
        with self._log.locked():
            state = self._verified()
            if not self._prefix_checked:
                self._read_verified(state, None)
            ts = utc_timestamp()
            entries = [
                make_entry(state.size + i, r.type, r.run_id, r.actor, r.payload, self.signer, ts)
                for i, r in enumerate(records)
            ]
            key = state.key
            if rotations:
                key = Ed25519Verifier.from_vkey(str(entries[-1].payload.get("new_key")))
            self._log.write(entries)
            if rotations:
                self._log.write_keys(None, key)
            elif state.size == 0:
                self.client.pin_genesis(key)
                self._log.write_keys(key, key)
            self._state = state.appended([e.line for e in entries], key)
            self.client.store_seen(self._state.mark)
        return entries

    def checkpoint(self) -> str:
        """Verify what is new in the log and that the rest still hashes to what was verified,
        then sign (if it grew) and return the checkpoint note of the whole log; the client
        store remembers it."""
        with self._log.locked():
            state = self._verified()
            self._read_verified(state, None)
            note = latest_checkpoint_note(self.directory)
            if note is None or Checkpoint.from_note(note).size != state.size:
                body = Checkpoint(self.origin, state.size, state.frontier.root()).body()
                note = sign_note(body, [self.signer])
                self._log.store_checkpoint(state.size, note)
            self.client.store_checkpoint(note, state.mark, state.frontier)
            return note

    def latest_checkpoint(self) -> str | None:
        return latest_checkpoint_note(self.directory)

    def entries(self, type: str | None = None) -> Iterator[Entry]:
        """Entries as the file holds them, unverified: for display and tools, never for
        decisions (use `verified_entries`)."""
        return read_entries(self.directory, type)

    def verified_entries(self, type: str | None = None) -> list[Entry]:
        """Every entry (optionally one type) of the verified log, or VerificationError naming
        the first bad index: the one reader for scores, settlement, the mirror and audits."""
        with self._log.locked():
            state = self._verified()
        return self._read_verified(state, type or "")

    def _read_verified(self, state: VerifiedState, type: str | None) -> list[Entry]:
        """The first `state.size` entries (of `type`; all for "", none for None), after
        checking that every line still hashes to the verified frontier. Entries after the last
        checkpoint had their signatures checked; those before are bound by its signed root."""
        frontier, lines = Frontier(), []
        needle = b'"type":"' + type.encode() + b'"' if type else b""
        if state.size:
            for _, line in iter_lines(self.log_path):
                frontier.append_leaf_hash(leaf_hash(line))
                if type is not None and needle in line:
                    lines.append(line)
                if frontier.size == state.size:
                    break
        if frontier.size != state.size or frontier.root() != state.frontier.root():
            raise self._first_failure()
        self._prefix_checked = True
        entries = [parse_line(line) for line in lines]
        return [e for e in entries if not type or e.type == type]

    def proof(self, seq: int) -> InclusionProof:
        """Inclusion proof of entry `seq` against a checkpoint of the whole, verified log."""
        note = self.checkpoint()
        checkpoint = Checkpoint.from_note(note)
        if seq < 0 or seq >= checkpoint.size:
            raise LedgerError(f"entry {seq} does not exist: the log has {checkpoint.size} entries")
        tree = self._log.refresh_tree()
        if tree.size < checkpoint.size or tree.root(checkpoint.size) != checkpoint.root_hash:
            raise self._first_failure()
        return InclusionProof(
            seq=seq,
            tree_size=checkpoint.size,
            leaf_hash=tree.leaf_hash_at(seq),
            hashes=tree.inclusion_proof(seq, checkpoint.size),
            root_hash=checkpoint.root_hash,
            checkpoint=note,
        )

    def rotate_key(self, new_key: SigningKey | None = None, reason: str = "") -> Entry:
        """Announce a new key in a key_rotation entry signed by the current one, then switch.
        With a key file, the new key is saved first as `<key>.next` so a crash loses nothing."""
        new_key = new_key or SigningKey.generate()
        new_signer = Ed25519Signer(self.origin, new_key)
        pending = None
        if self._key_path is not None:
            pending = self._key_path.with_name(self._key_path.name + ".next")
            write_signing_key(pending, new_key)
        payload = rotation_payload(new_signer.verifier(), reason)
        entry = self.append(KEY_ROTATION, "", "ledger", payload)
        if pending is not None and self._key_path is not None:
            _promote_pending_key(self._key_path, pending, self.signer)
        self.signer = new_signer
        return entry

    def genesis(self) -> Ed25519Verifier | None:
        """The log's first key as pinned outside the folder."""
        return self.client.genesis()

    def anchors(self, quorum: Quorum) -> Anchors:
        """What this client knows from outside the folder, for a full verification."""
        cached = self.client.checkpoint()
        notes = [cached.note] if cached is not None else []
        cosigned = self.client.cosigned()
        return Anchors(notes, self.client.seen(), quorum, cosigned[0] if cosigned else None)

    def verify(self, quorum: Quorum | None = None) -> VerifyResult:
        """Full verification, as `skyshard ledger verify` does it: the latest checkpoint needs
        the quorum (this ledger's, unless another is given)."""
        genesis = self.genesis() or self.signer.verifier()
        return verify_ledger(self.directory, genesis, self.anchors(quorum or self.quorum))

    def store_cosignatures(self, size: int, signature_lines: Sequence[str]) -> str:
        """Add cosignature lines to checkpoint `size`; the client remembers it once the
        pinned cosigners' signatures on it verify and reach the quorum."""
        note = self._log.store_cosignatures(size, signature_lines)
        self._remember_cosigned(note)
        return note

    def _verified(self) -> VerifiedState:
        """Under the lock: the verified state of the whole log, extending the last one by the
        entries appended since, or VerificationError at the first bad entry."""
        cached = self.client.checkpoint()
        seen = self.client.seen()
        note = latest_checkpoint_note(self.directory)
        stored = _parse_checkpoint(note) if note is not None else None
        marks = (cached.mark if cached else None, seen, self._state.mark if self._state else None)
        protected = max([m.size for m in marks if m] + [stored.size if stored else 0])
        self._log.repair_tail(protected)
        state = self._state or self._from_cache(cached) or self._from_genesis(cached, seen)
        roots = {}
        if stored is not None:
            if cached is not None and stored.size < cached.checkpoint.size:
                raise VerificationError(
                    None,
                    f"the folder's latest checkpoint is {stored.size}, but checkpoint "
                    f"{cached.checkpoint.size} was verified before: checkpoints were rolled back",
                )
            if stored.size > state.size:
                _open_checkpoint(note, state.key)
                roots[stored.size] = stored.root_hash
        state = extend_verified(self.log_path, state, roots)
        if stored is not None and stored.size > state.size:
            raise VerificationError(
                state.size,
                f"checkpoint {stored.size} commits to more entries than the log has "
                f"({state.size}): entries were removed",
            )
        if seen is not None:
            if seen.size > state.size:
                raise VerificationError(
                    state.size,
                    f"the log has {state.size} entries but entry {seen.size - 1} was appended "
                    "before: entries were removed",
                )
            check_mark(self.log_path, seen)
        self._check_cosignatures(note)
        if state.key != self.signer.verifier():
            raise LedgerError(
                f"key {self.signer.verifier().vkey()} is not the ledger's active key "
                f"({state.key.vkey()}); it was rotated, load the current key"
            )
        self._state = state
        return state

    def _from_cache(self, cached: CachedCheckpoint | None) -> VerifiedState | None:
        """Start from the client's last verified checkpoint if this key signed it."""
        if cached is None:
            return None
        try:
            open_note(cached.note, [self.signer.verifier()])
        except NoteError:
            return None  # signed before a key rotation: verify from the genesis key
        return VerifiedState(cached.frontier, cached.mark, self.signer.verifier())

    def _from_genesis(self, cached: CachedCheckpoint | None, seen: Mark | None) -> VerifiedState:
        """Verify the whole log from the pinned genesis key (pinning the folder's on first
        contact, accepted only if its key chain ends at the key this process holds)."""
        genesis = self.client.genesis()
        if not self.log_path.exists() or self.log_path.stat().st_size == 0:
            if cached is not None or (seen is not None and seen.size):
                raise VerificationError(0, f"{self.log_path} is empty but entries were seen")
            if genesis is not None and genesis != self.signer.verifier():
                raise LedgerError(
                    f"{self.client.directory}: the log's genesis key is pinned to "
                    f"{genesis.vkey()}, not this key {self.signer.verifier().vkey()}"
                )
            return VerifiedState(Frontier(), Mark(0, 0, b""), self.signer.verifier())
        trusted = genesis or read_vkey(self.directory / GENESIS_KEY_FILE) or self.verifier()
        # The quorum on the latest checkpoint is _check_cosignatures' to judge.
        anchors = self.anchors(replace(self.quorum, required=0))
        result = verify_ledger(self.directory, trusted, anchors)
        if not result.ok:
            raise VerificationError(result.first_bad_index, result.describe())
        state = VerifiedState.of(result)
        self._prefix_checked = True
        if genesis is None and state.key == self.signer.verifier():
            self.client.pin_genesis(trusted)
        return state

    def _check_cosignatures(self, latest: str | None) -> None:
        """The quorum of cosigners pinned in policy.yaml. The checkpoint this client last saw
        cosigned must keep those cosignatures and the quorum; the folder's latest checkpoint
        must carry only valid ones, and is remembered once it reaches the quorum. A latest
        checkpoint newer than the remembered one may still be collecting its cosignatures
        (signed after a run, a replica unreachable): that is not refused."""
        remembered = self.client.cosigned()
        if remembered is not None:
            failure = stripped_cosignatures(self.directory, self.quorum, remembered[0])
            if failure is not None:
                raise VerificationError(None, failure)
        if latest is not None:
            self._remember_cosigned(latest)

    def _remember_cosigned(self, note: str) -> None:
        try:
            names = self.quorum.cosigned_by(note)
        except NoteError as exc:
            raise VerificationError(None, f"the folder's latest checkpoint: {exc}") from None
        if names and self.quorum.met_by(names):
            self.client.store_cosigned(note)

    def _first_failure(self) -> VerificationError:
        """The reason a read found the log different from its verified state (a checkpoint
        still collecting cosignatures is not one)."""
        result = self.verify(replace(self.quorum, required=0))
        if result.ok:
            return VerificationError(None, "the log changed while it was read; read it again")
        return VerificationError(result.first_bad_index, result.describe())


def policy_quorum(policy: LedgerPolicy) -> Quorum:
    """policy.yaml's `ledger` cosigners (their keys pinned there) and quorum; NoteError names
    the bad entry."""
    cosigners = []
    for index, cosigner in enumerate(policy.cosigners):
        field = f"policy.yaml: ledger.cosigners[{index}].vkey"
        try:
            verifier = CosignatureVerifier.from_vkey(cosigner.vkey)
        except NoteError as exc:
            raise NoteError(f"{field}: {exc}") from None
        if verifier.name != cosigner.name:
            raise NoteError(f"{field}: key name {verifier.name!r} is not {cosigner.name!r}")
        cosigners.append(verifier)
    return Quorum(tuple(cosigners), policy.quorum)


def _parse_checkpoint(note: str) -> Checkpoint:
    try:
        return Checkpoint.from_note(note)
    except NoteError as exc:
        raise VerificationError(None, f"the folder's latest checkpoint: {exc}") from None


def _open_checkpoint(note: str, key: Ed25519Verifier) -> None:
    try:
        open_note(note, [key])
    except NoteError as exc:
        raise VerificationError(None, f"the folder's latest checkpoint: {exc}") from None


def _promote_pending_key(key_path: Path, pending: Path, old: Ed25519Signer) -> None:
    retired = key_path.with_name(f"{LEDGER_KEY_NAME}-{old.key_id.hex()}{KEY_SUFFIX}.retired")
    key_path.replace(retired)
    pending.replace(key_path)


def _finish_interrupted_rotation(directory: Path, key_path: Path, origin: str) -> None:
    """If a rotation entry was written but the new key file not yet moved into place, do it."""
    pending = key_path.with_name(key_path.name + ".next")
    active = read_vkey(directory / ACTIVE_KEY_FILE)
    if not pending.exists() or active is None:
        return
    pending_signer = Ed25519Signer(origin, load_signing_key(pending))
    if pending_signer.verifier() == active:
        _promote_pending_key(key_path, pending, Ed25519Signer(origin, load_signing_key(key_path)))
    else:
        pending.unlink()  # never announced in the log, so never trusted by anyone


__all__ = [
    "DEFAULT_ORIGIN",
    "Entry",
    "InclusionProof",
    "Ledger",
    "LedgerError",
    "Record",
    "VerificationError",
    "VerifyResult",
]
