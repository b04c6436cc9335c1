"""`skyshard ledger …`: verify, show, prove, print checkpoints and keys, export, sync."""

from __future__ import annotations

import base64
import json
import shutil
from itertools import islice
from pathlib import Path

import click
import duckdb

from skyshard.cli.common import open_ledger
from skyshard.config import ConfigError, paths
from skyshard.config.policy import PolicyFile
from skyshard.config.sky import sky_policy
from skyshard.ledger import LedgerError, policy_quorum
from skyshard.ledger.client import ClientStore
from skyshard.ledger.entry import KEY_ROTATION, parse_line
from skyshard.ledger.keys import KeyFileError
from skyshard.ledger.log import (
    CHECKPOINT_DIR,
    LOG_FILE,
    checkpoint_paths,
    iter_lines,
    read_entries,
)
from skyshard.ledger.note import Ed25519Verifier, NoteError
from skyshard.ledger.replica import ReplicaTarget, sync_replica
from skyshard.ledger.verify import Anchors, VerifiedState, VerifyResult, verify_ledger
from skyshard.scoring.trust_inputs import TRUST_TABLE
from skyshard.transport.ssh import SshError
from skyshard.transport.validate import ValidationError
from skyshard.trust.anchors import replica_targets
from skyshard.trust.mirror import MirrorError, check_mirror
from skyshard.trust.scores import TrustInputError, check_trust_rows


def _policy() -> PolicyFile:
    """policy.yaml (the `ledger` section's cosigners and quorum, the neutral trust score),
    without generating a demo sky."""
    try:
        return sky_policy()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _targets(policy: PolicyFile) -> list[ReplicaTarget]:
    try:
        return replica_targets(policy)
    except (NoteError, ValidationError) as exc:
        raise click.ClickException(str(exc)) from exc


def _require_log(directory: Path) -> None:
    if not (directory / LOG_FILE).exists():
        raise click.ClickException(f"no ledger at {directory / LOG_FILE} (SKYSHARD_LEDGER_DIR)")


def _read_vkey_file(path: Path) -> Ed25519Verifier:
    try:
        return Ed25519Verifier.from_vkey(path.read_text().strip())
    except (OSError, NoteError) as exc:
        raise click.ClickException(f"{path}: not a log verifier key: {exc}") from exc


@click.group("ledger")
def ledger() -> None:
    """The signed transparency ledger of every run, migration and decision."""


@ledger.command()
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File with the log's genesis verifier key, obtained outside the ledger folder "
    "(default: the key pinned in the client store).",
)
@click.option(
    "--checkpoint",
    "checkpoint_files",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    help="A checkpoint note the log must still contain, unchanged (repeatable).",
)
def verify(key_file: Path | None, checkpoint_files: tuple[Path, ...]) -> None:
    """Check every signature, sequence number, checkpoint, consistency and cosignature against
    anchors from outside the folder: the genesis key, trusted checkpoints, and what this
    client verified and appended before."""
    directory = paths.ledger_dir()
    _require_log(directory)
    client = ClientStore(paths.ledger_client_dir(directory))
    policy = _policy()
    try:
        quorum = policy_quorum(policy.ledger)
        pinned = client.genesis()
        genesis = _read_vkey_file(key_file) if key_file else pinned
        if genesis is None:
            raise click.ClickException(
                f"no genesis key pinned in {client.directory}: pass --key VKEY (the log's "
                f"first verifier key, obtained from outside {directory})"
            )
        if pinned is not None and genesis != pinned:
            raise click.ClickException(
                f"ledger verification FAILED at index 0: --key {genesis.vkey()} differs from "
                f"the genesis key pinned in {client.directory} ({pinned.vkey()})"
            )
        cached = client.checkpoint()
        notes = [cached.note] if cached else []
        notes += [p.read_text() for p in checkpoint_files]
        cosigned = client.cosigned()
        anchors = Anchors(notes, client.seen(), quorum, cosigned[0] if cosigned else None)
        result = verify_ledger(directory, genesis, anchors)
    except (NoteError, LedgerError, OSError) as exc:
        raise click.ClickException(f"cannot verify {directory}: {exc}") from exc
    if result.torn_tail is not None:
        click.echo(
            f"warning: torn last line at byte {result.torn_tail.offset} "
            f"({len(result.torn_tail.data)} bytes) is not an entry; the next append removes it",
            err=True,
        )
    if not result.ok:
        where = result.first_bad_index if result.first_bad_index is not None else "-"
        raise click.ClickException(f"ledger verification FAILED at index {where}: {result.reason}")
    _check_tables(directory, result, policy.trust.neutral_score)
    _remember(client, directory, result)
    if result.uncovered:
        click.echo(
            f"warning: the last {result.uncovered} entries are covered by no checkpoint yet "
            "(a run in progress, or run `skyshard ledger checkpoint`)",
            err=True,
        )
    cosigned = sum(1 for names in result.cosignatures.values() if names)
    click.echo(
        f"ok: {result.entries} entries, {result.checkpoints} checkpoints "
        f"({cosigned} cosigned), root {base64.b64encode(result.root_hash).decode()}"
    )


def _check_tables(directory: Path, result: VerifyResult, neutral_score: float) -> None:
    """The DuckDB tables derived from the log (the mirror, trust.scores) must match it."""
    database = paths.duckdb_path()
    if not database.exists():
        return
    lines = islice(iter_lines(directory / LOG_FILE), result.entries)
    entries = [parse_line(line) for _, line in lines]
    try:
        with duckdb.connect(str(database), read_only=True) as con:
            tables = {
                ".".join(row)
                for row in con.execute(
                    "select table_schema, table_name from information_schema.tables"
                ).fetchall()
            }
            if "ledger.entries" in tables:
                check_mirror(con, entries)
            if TRUST_TABLE in tables:
                check_trust_rows(
                    con.sql(f"select * from {TRUST_TABLE}").pl(), entries, neutral_score
                )
    except duckdb.IOException as exc:  # a writer holds the file
        click.echo(f"warning: {database}: derived tables not checked ({exc})", err=True)
    except (MirrorError, TrustInputError) as exc:
        raise click.ClickException(
            f"ledger verification FAILED at index -: {database}: {exc}"
        ) from exc


def _remember(client: ClientStore, directory: Path, result: VerifyResult) -> None:
    """Like a sumdb client: keep the latest verified checkpoint, to catch a later rollback."""
    stored = checkpoint_paths(directory)
    if not stored or result.uncovered or result.tree is None:
        return
    state = VerifiedState.of(result)
    client.store_checkpoint(stored[-1].read_text(), state.mark, state.frontier)


@ledger.command()
@click.option("--type", "entry_type", multiple=True, help="Only entries of this type (repeatable).")
def show(entry_type: tuple[str, ...]) -> None:
    """Print entries (one JSON line each), optionally only some types."""
    directory = paths.ledger_dir()
    _require_log(directory)
    try:
        for entry in read_entries(directory):
            if not entry_type or entry.type in entry_type:
                click.echo(entry.line.decode())
    except ValueError as exc:
        raise click.ClickException(f"{directory / LOG_FILE}: {exc}; run ledger verify") from exc


@ledger.command()
@click.argument("seq", type=int)
def proof(seq: int) -> None:
    """Print the inclusion proof of entry SEQ against the latest checkpoint."""
    _require_log(paths.ledger_dir())
    try:
        inclusion = open_ledger().proof(seq)
        inclusion.verify()
    except (LedgerError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        json.dumps(
            {
                "seq": seq,
                "tree_size": inclusion.tree_size,
                "leaf_hash": base64.b64encode(inclusion.leaf_hash).decode(),
                "hashes": [base64.b64encode(h).decode() for h in inclusion.hashes],
                "root_hash": base64.b64encode(inclusion.root_hash).decode(),
                "checkpoint": inclusion.checkpoint,
            },
            indent=2,
        )
    )


@ledger.command()
def checkpoint() -> None:
    """Sign a checkpoint of the whole log if it grew, and print the latest one."""
    try:
        click.echo(open_ledger().checkpoint(), nl=False)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc


@ledger.command()
def pubkey() -> None:
    """Print the verifier key this machine signs the ledger with (C2SP signed-note format)."""
    click.echo(open_ledger().verifier().vkey())


@ledger.command()
@click.option("--to", "target", type=click.Path(file_okay=False, path_type=Path), required=True)
def export(target: Path) -> None:
    """Write the log, every checkpoint and the verifier keys to a folder for auditors."""
    directory = paths.ledger_dir()
    _require_log(directory)
    (target / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(directory / LOG_FILE, target / LOG_FILE)
    for path in checkpoint_paths(directory):
        shutil.copyfile(path, target / CHECKPOINT_DIR / path.name)
    genesis = open_ledger().genesis()
    keys = [genesis.vkey()] if genesis else []
    keys += [e.payload["new_key"] for e in read_entries(directory, KEY_ROTATION)]
    (target / "log-keys.vkey").write_text("".join(f"{k}\n" for k in keys))
    cosigners = "".join(f"{t.verifier.vkey()}\n" for t in _targets(_policy()))
    (target / "cosigner-keys.vkey").write_text(cosigners)
    click.echo(f"exported {directory} to {target}")


@ledger.command()
@click.option("--provider", "names", multiple=True, help="Only this cosigner (repeatable).")
def sync(names: tuple[str, ...]) -> None:
    """Push the verified log and a fresh checkpoint to the replicas of the cosigners in
    policy.yaml (their keys pinned there) and store their cosignatures."""
    _require_log(paths.ledger_dir())
    targets = [t for t in _targets(_policy()) if not names or t.name in names]
    unknown = sorted(set(names) - {t.name for t in targets})
    if unknown or not targets:
        listed = ", ".join(unknown) or "at all"
        raise click.ClickException(f"no cosigner {listed} in policy.yaml ledger.cosigners")
    ledger_ = open_ledger()
    for target in targets:
        try:
            size = sync_replica(ledger_, target)
        except (LedgerError, NoteError, KeyFileError, OSError, SshError) as exc:
            raise click.ClickException(f"{target.name}: {exc}") from exc
        click.echo(f"provider {target.name} cosigned checkpoint {size}")
