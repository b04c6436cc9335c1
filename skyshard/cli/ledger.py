"""`skyshard ledger …`: verify, show, prove, print checkpoints and keys, export, sync."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import click

from skyshard import paths
from skyshard.ledger import Ledger, LedgerError
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.cosignature import CosignatureVerifier
from skyshard.ledger.entry import KEY_ROTATION
from skyshard.ledger.keys import KeyFileError
from skyshard.ledger.log import (
    ACTIVE_KEY_FILE,
    CHECKPOINT_DIR,
    GENESIS_KEY_FILE,
    LOG_FILE,
    checkpoint_paths,
    read_entries,
    read_vkey,
)
from skyshard.ledger.note import NoteError
from skyshard.ledger.replica import Replica
from skyshard.ledger.verify import verify_ledger

COSIGNERS_DIR = "cosigners"


def _ledger() -> Ledger:
    try:
        return Ledger.open(paths.ledger_dir(), keys_dir=paths.keys_dir())
    except (KeyFileError, LedgerError, NoteError) as exc:
        raise click.ClickException(str(exc)) from exc


def _cosigner_keys(directory: Path) -> list[CosignatureVerifier]:
    folder = directory / COSIGNERS_DIR
    if not folder.is_dir():
        return []
    return [CosignatureVerifier.from_vkey(p.read_text()) for p in sorted(folder.glob("*.vkey"))]


def _require_log(directory: Path) -> None:
    if not (directory / LOG_FILE).exists():
        raise click.ClickException(f"no ledger at {directory / LOG_FILE} (SKYSHARD_LEDGER_DIR)")


@click.group("ledger")
def ledger() -> None:
    """The signed transparency ledger of every run, migration and decision."""


@ledger.command()
def verify() -> None:
    """Check every signature, sequence number, checkpoint, consistency and cosignature."""
    directory = paths.ledger_dir()
    _require_log(directory)
    try:
        result = verify_ledger(directory, cosigners=_cosigner_keys(directory))
    except (NoteError, ValueError) as exc:
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
    cosigned = sum(1 for names in result.cosignatures.values() if names)
    click.echo(
        f"ok: {result.entries} entries, {result.checkpoints} checkpoints "
        f"({cosigned} cosigned), root {base64.b64encode(result.root_hash).decode()}"
    )


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
        inclusion = _ledger().proof(seq)
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
        click.echo(_ledger().checkpoint(), nl=False)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc


@ledger.command()
def pubkey() -> None:
    """Print the ledger's current verifier key (C2SP signed-note format)."""
    active = read_vkey(paths.ledger_dir() / ACTIVE_KEY_FILE)
    click.echo((active or _ledger().verifier()).vkey())


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
    genesis = read_vkey(directory / GENESIS_KEY_FILE)
    keys = [genesis.vkey()] if genesis else []
    keys += [e.payload["new_key"] for e in read_entries(directory, KEY_ROTATION)]
    (target / "log-keys.vkey").write_text("".join(f"{k}\n" for k in keys))
    cosigners = "".join(f"{v.vkey()}\n" for v in _cosigner_keys(directory))
    (target / "cosigner-keys.vkey").write_text(cosigners)
    click.echo(f"exported {directory} to {target}")


@ledger.command()
@click.option("--replica", "replica_dir", type=click.Path(path_type=Path), required=True)
@click.option("--provider", "provider_id", required=True)
def sync(replica_dir: Path, provider_id: str) -> None:
    """Push the log and a fresh checkpoint to a provider's replica and store its cosignature."""
    directory = paths.ledger_dir()
    _require_log(directory)
    ledger_ = _ledger()
    try:
        note = ledger_.checkpoint()
        replica = Replica.open(replica_dir, provider_id)
        genesis = read_vkey(directory / GENESIS_KEY_FILE) or ledger_.verifier()
        cosignature = replica.receive((directory / LOG_FILE).read_bytes(), note, genesis)
        _pin_cosigner(directory, provider_id, replica.cosigner.verifier())
        size = Checkpoint.from_note(note).size
        ledger_.store_cosignatures(size, [cosignature.line()])
    except (LedgerError, NoteError, KeyFileError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"provider {provider_id} cosigned checkpoint {size}")


def _pin_cosigner(directory: Path, provider_id: str, verifier: CosignatureVerifier) -> None:
    path = directory / COSIGNERS_DIR / f"{provider_id}.vkey"
    if path.exists():
        pinned = CosignatureVerifier.from_vkey(path.read_text())
        if pinned != verifier:
            raise LedgerError(f"{path}: provider {provider_id} presented a different key")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(verifier.vkey() + "\n")
