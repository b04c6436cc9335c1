"""The tamper matrix: every edit of the ledger folder, its checkpoints and their cosignatures
is caught by `skyshard ledger verify` (first bad index, non-zero exit) and refused by every
consumer, each in a fresh `Ledger`: readers (scores, settlement, mirror), planning's trust
check, append, checkpoint, proof and sync. The edited SQL tables (mirror, trust.scores) are
refused by their consumers."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import yaml
from click.testing import CliRunner

from skyshard import db
from skyshard.cli.ledger import ledger as ledger_cli
from skyshard.config import paths
from skyshard.config.policy import TrustPolicy
from skyshard.ledger import Ledger, LedgerError
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.cosignature import Cosigner
from skyshard.ledger.ed25519 import SigningKey
from skyshard.ledger.entry import make_entry, parse_line
from skyshard.ledger.merkle import MerkleTree
from skyshard.ledger.note import Ed25519Signer, Note, parse_note, sign_note
from skyshard.ledger.replica import Replica, ReplicaTarget, sync_replica
from skyshard.scoring.trust_inputs import TRUST_TABLE, read_trust_scores
from skyshard.trust.events import (
    EntryType,
    migration_payload,
    record_dispute_opened,
    record_migration,
    record_run_event,
)
from skyshard.trust.mirror import MirrorError, mirror_ledger
from skyshard.trust.scores import (
    TrustInputError,
    check_trust_inputs,
    compute_trust_scores,
    record_trust_scores,
)
from skyshard.trust.settlement import placement_history, settlement_since

PROVIDER = "provider-a"
TIERS = {"aws-use1": "gold", "fra-colo": "silver"}
POLICY = TrustPolicy()
FIRST_CHECKPOINT, SECOND_CHECKPOINT, ENTRIES = 9, 13, 16


@dataclass
class World:
    root: Path
    target: ReplicaTarget

    @property
    def log(self) -> Path:
        return paths.ledger_dir() / "log.jsonl"

    def lines(self) -> list[bytes]:
        return self.log.read_bytes().splitlines(keepends=True)

    def write(self, lines: list[bytes]) -> None:
        self.log.write_bytes(b"".join(lines))

    def note(self, size: int) -> Path:
        return paths.ledger_dir() / "checkpoints" / f"{size}.note"


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    """16 entries: a checkpoint at 9 and one at 13, both cosigned by a replica that policy.yaml
    pins with a quorum of 1; the last 3 entries are a run in progress. trust.scores and the
    mirror are in DuckDB."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SKYSHARD_HOME", str(home))
    replica = Replica.open(tmp_path / "replica", PROVIDER)
    vkey = replica.cosigner.verifier().vkey()
    cosigner = {"name": PROVIDER, "vkey": vkey, "replica": str(tmp_path / "replica")}
    policy = {"ledger": {"quorum": 1, "cosigners": [cosigner]}}
    (home / "policy.yaml").write_text(yaml.safe_dump(policy))
    target = ReplicaTarget(PROVIDER, replica.cosigner.verifier(), str(tmp_path / "replica"))
    ledger = Ledger.open()
    for i in range(6):
        payload = migration_payload(f"m{i}", f"s{i}", "aws-use1", "fra-colo", 1 << 30)
        record_migration(EntryType.MIGRATION_COMPLETED, f"run-{i}", payload, ledger=ledger)
    record_dispute_opened("aws-use1", "slow", "ops", ledger=ledger)
    now = datetime.now(UTC)
    scores = compute_trust_scores(ledger.verified_entries(), TIERS, POLICY, now)
    table = record_trust_scores(ledger, scores, POLICY, now)
    with db.connect(paths.duckdb_path()) as con:
        db.replace_table(con, TRUST_TABLE, table)
    assert sync_replica(ledger, target) == FIRST_CHECKPOINT
    for i in range(2):
        record_run_event("run_started", f"job-{i}", "planning_cycle", ledger=ledger)
        record_run_event("run_succeeded", f"job-{i}", "planning_cycle", ledger=ledger)
    assert sync_replica(ledger, target) == SECOND_CHECKPOINT
    for i in range(3):
        record_run_event("run_started", f"running-{i}", "migrate_shard", ledger=ledger)
    with db.connect(paths.duckdb_path()) as con:
        mirror_ledger(con, ledger)
    assert verify().exit_code == 0
    return World(tmp_path, target)


def verify(*args: str):
    return CliRunner().invoke(ledger_cli, ["verify", *args])


def flip(index: int, old: bytes, new: bytes) -> Callable[[World], None]:
    def tamper(world: World) -> None:
        lines = world.lines()
        assert old in lines[index]
        lines[index] = lines[index].replace(old, new, 1)
        world.write(lines)

    return tamper


def delete(world: World) -> None:
    world.write([line for i, line in enumerate(world.lines()) if i != 4])


def swap(world: World) -> None:
    lines = world.lines()
    lines[5], lines[6] = lines[6], lines[5]
    world.write(lines)


def truncate_last_line(world: World) -> None:
    world.write(world.lines()[:-1])


def truncate_mid_line(world: World) -> None:
    lines = world.lines()
    world.write([*lines[:14], lines[14][:40]])


def truncate_behind_checkpoint(world: World) -> None:
    world.write(world.lines()[:11])


def _appended(seq: int, signer: Ed25519Signer) -> Callable[[World], None]:
    def tamper(world: World) -> None:
        entry = make_entry(seq, "run_started", "forged", "intruder", {}, signer)
        world.write([*world.lines(), entry.line + b"\n"])

    return tamper


def _log_signer() -> Ed25519Signer:
    return Ledger.open().signer


def append_by_another_key(world: World) -> None:
    stranger = Ed25519Signer(_log_signer().name, SigningKey(b"\x09" * 32))
    _appended(ENTRIES, stranger)(world)


def wrong_sequence(world: World) -> None:
    _appended(ENTRIES + 4, _log_signer())(world)


def checkpoint_swap(world: World) -> None:
    world.note(SECOND_CHECKPOINT).write_text(world.note(FIRST_CHECKPOINT).read_text())


def checkpoint_rollback(world: World) -> None:
    world.note(SECOND_CHECKPOINT).unlink()
    world.write(world.lines()[:FIRST_CHECKPOINT])


def rekey(world: World) -> None:
    """Re-sign every entry and checkpoint with a new key and replace the folder's keys."""
    signer = Ed25519Signer(_log_signer().name, SigningKey(b"\x0a" * 32))
    lines = []
    for line in world.lines():
        old = parse_line(line.rstrip(b"\n"))
        new = make_entry(old.seq, old.type, old.run_id, old.actor, old.payload, signer, old.ts)
        lines.append(new.line + b"\n")
    world.write(lines)
    for name in ("genesis.vkey", "active.vkey"):
        (paths.ledger_dir() / name).write_text(signer.verifier().vkey() + "\n")
    tree = MerkleTree.from_leaves(line.rstrip(b"\n") for line in lines)
    for size in (FIRST_CHECKPOINT, SECOND_CHECKPOINT):
        body = Checkpoint(signer.name, size, tree.root(size)).body()
        world.note(size).write_text(sign_note(body, [signer]))


def strip_cosignatures(world: World) -> None:
    for path in (paths.ledger_dir() / "checkpoints").glob("*.note"):
        note = parse_note(path.read_text())
        origin = Checkpoint.parse_body(note.text).origin
        kept = [s for s in note.signatures if s.name == origin]
        path.write_text(Note(note.text, tuple(kept)).format())


def reencoded(blob: str) -> str:
    """The same bytes in non-canonical base64: a padding bit of the last character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    data = blob.rstrip("=")
    changed = data[:-1] + alphabet[alphabet.index(data[-1]) ^ 1] + blob[len(data) :]
    assert changed != blob and base64.b64decode(changed) == base64.b64decode(blob)
    return changed


def reencode_signature(world: World) -> None:
    lines = world.lines()
    entry = parse_line(lines[3].rstrip(b"\n"))
    lines[3] = lines[3].replace(entry.sig.encode(), reencoded(entry.sig).encode())
    world.write(lines)


def _reencode_note_signature(by_log: bool) -> Callable[[World], None]:
    def tamper(world: World) -> None:
        text = world.note(SECOND_CHECKPOINT).read_text()
        origin = Checkpoint.from_note(text).origin
        (line,) = [s.line() for s in parse_note(text).signatures if (s.name == origin) == by_log]
        blob = line.rstrip("\n").rsplit(" ", 1)[1]
        world.note(SECOND_CHECKPOINT).write_text(text.replace(blob, reencoded(blob)))

    return tamper


def too_few_cosignatures(world: World) -> None:
    """policy.yaml now wants two cosigners; only one cosigned the checkpoints."""
    second = Cosigner("provider-b", SigningKey(b"\x0c" * 32)).verifier().vkey()
    path = paths.skyshard_home() / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    policy["ledger"]["cosigners"].append({"name": "provider-b", "vkey": second})
    policy["ledger"]["quorum"] = 2
    path.write_text(yaml.safe_dump(policy))


CASES = {
    "byte flip in a checkpointed entry": (flip(2, b'"s2"', b'"s9"'), 2),
    "byte flip in the uncovered tail": (flip(14, b'"running-1"', b'"running-7"'), 14),
    "deleted entry": (delete, 4),
    "swapped entries": (swap, 5),
    "truncated last line": (truncate_last_line, 15),
    "truncated mid-line": (truncate_mid_line, 14),
    "truncated behind a checkpoint": (truncate_behind_checkpoint, 11),
    "appended by another key": (append_by_another_key, ENTRIES),
    "wrong sequence number": (wrong_sequence, ENTRIES),
    "checkpoint swapped": (checkpoint_swap, None),
    "checkpoint and log rolled back": (checkpoint_rollback, FIRST_CHECKPOINT),
    "re-keyed log": (rekey, 0),
    "stripped cosignatures": (strip_cosignatures, None),
    "too few cosignatures for the policy's quorum": (too_few_cosignatures, None),
    "re-encoded signature": (reencode_signature, 3),
    "re-encoded cosignature": (_reencode_note_signature(by_log=False), None),
    "re-encoded checkpoint signature": (_reencode_note_signature(by_log=True), None),
}


def _consumers(world: World) -> dict[str, Callable[[], object]]:
    def planning() -> None:
        with db.connect(paths.duckdb_path(), read_only=True) as con:
            trust = read_trust_scores(con, TIERS, POLICY.neutral_score)
        check_trust_inputs(trust, Ledger.open(), POLICY.neutral_score)

    def mirror() -> None:
        with db.connect(paths.duckdb_path()) as con:
            mirror_ledger(con, Ledger.open())

    def scores() -> None:
        compute_trust_scores(Ledger.open().verified_entries(), TIERS, POLICY, datetime.now(UTC))

    def settlement() -> None:
        entries, until = Ledger.open().verified_entries(), datetime.now(UTC)
        since = settlement_since(entries, until)
        placement_history({"s0": "aws-use1"}, entries, since, until)

    return {
        "scores": scores,
        "settlement": settlement,
        "planning": planning,
        "mirror": mirror,
        "append": lambda: Ledger.open().append("run_started", "after", "dagster", {}),
        "checkpoint": lambda: Ledger.open().checkpoint(),
        "proof": lambda: Ledger.open().proof(1),
    }


def test_every_consumer_accepts_the_untouched_log(world):
    for consume in _consumers(world).values():
        consume()
    assert sync_replica(Ledger.open(), world.target) == ENTRIES + 1
    assert verify().exit_code == 0


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_is_detected_and_refused(world, case):
    tamper, first_bad = CASES[case]
    tamper(world)
    result = verify()
    assert result.exit_code == 1, result.output
    where = "-" if first_bad is None else first_bad
    assert f"FAILED at index {where}:" in result.output, result.output
    for name, consume in _consumers(world).items():
        with pytest.raises((LedgerError, TrustInputError, MirrorError)):
            consume()
            pytest.fail(f"{name} accepted a log with {case}")
    with pytest.raises(LedgerError):
        sync_replica(Ledger.open(), world.target)


def test_a_checkpoint_awaiting_cosignatures_is_not_refused(world):
    """Signed after a run while the replica is unreachable: consumers go on, `verify` names
    the shortfall, the next sync cosigns it, and from then on its cosignature is expected."""
    for consume in _consumers(world).values():
        consume()
    result = verify()
    assert result.exit_code == 1, result.output
    assert "FAILED at index -: checkpoint 17 has 0 cosignature(s) (-)" in result.output
    assert sync_replica(Ledger.open(), world.target) == ENTRIES + 1
    assert verify().exit_code == 0
    strip_cosignatures(world)
    with pytest.raises(LedgerError, match=r"17\.note: the cosignature\(s\) of provider-a seen on"):
        Ledger.open().verified_entries()


def test_verify_takes_the_key_and_checkpoints_from_outside(world, tmp_path):
    ledger = Ledger.open()
    key_file = tmp_path / "log.vkey"
    key_file.write_text(ledger.genesis().vkey() + "\n")
    checkpoint_file = tmp_path / "trusted.note"
    checkpoint_file.write_text(world.note(SECOND_CHECKPOINT).read_text())
    assert verify("--key", str(key_file), "--checkpoint", str(checkpoint_file)).exit_code == 0
    stranger = Ed25519Signer(ledger.origin, SigningKey(b"\x0b" * 32))
    key_file.write_text(stranger.verifier().vkey() + "\n")
    refused = verify("--key", str(key_file))
    assert refused.exit_code == 1 and "differs from the genesis key pinned" in refused.output
    shutil.rmtree(ledger.client.directory)
    alone = verify("--key", str(key_file))
    assert alone.exit_code == 1 and "FAILED at index 0: signed by key" in alone.output
    assert "no genesis key pinned" in verify().output


def test_edited_mirror_and_score_tables_are_refused(world):
    with db.connect(paths.duckdb_path()) as con:
        con.execute(f"UPDATE {TRUST_TABLE} SET score = score + 0.1 WHERE provider_id = 'fra-colo'")
    result = verify()
    assert result.exit_code == 1 and "row provider_id='fra-colo'" in result.output
    with duckdb.connect(str(paths.duckdb_path()), read_only=True) as con:
        trust = read_trust_scores(con, TIERS, POLICY.neutral_score)
    with pytest.raises(TrustInputError, match="differ from entry"):
        check_trust_inputs(trust, Ledger.open(), POLICY.neutral_score)
    with db.connect(paths.duckdb_path()) as con:
        con.execute("UPDATE ledger.entries SET line = replace(line, 's1', 's8') WHERE seq = 1")
    result = verify()
    assert result.exit_code == 1 and "ledger.entries row seq 1 differs" in result.output
    with (
        pytest.raises(MirrorError, match="row seq 1 differs"),
        db.connect(paths.duckdb_path()) as con,
    ):
        mirror_ledger(con, Ledger.open())
