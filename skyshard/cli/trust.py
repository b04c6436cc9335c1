"""`skyshard trust …`: import signed audits, open and resolve disputes, show trust scores."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

import click
import duckdb
import polars as pl

from skyshard.cli.common import open_ledger
from skyshard.config import ConfigError, paths
from skyshard.config.sky import Sky
from skyshard.ledger import LedgerError
from skyshard.ledger.entry import EntryError
from skyshard.sim.home import current_sky
from skyshard.trust.audit import AuditError, import_attestation
from skyshard.trust.events import (
    DISPUTE_OUTCOMES,
    DisputeError,
    record_dispute_opened,
    record_dispute_resolved,
)
from skyshard.trust.scores import compute_trust_scores

INCIDENTS_TABLE = "marts.fct_provider_incidents"


def _sky() -> Sky:
    try:
        return current_sky()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def read_incidents(database: Path) -> pl.DataFrame | None:
    """marts.fct_provider_incidents from the DuckDB file, if the file and table exist."""
    if not database.exists():
        return None
    try:
        with duckdb.connect(str(database), read_only=True) as con:
            return con.sql(f"select provider_id, day, availability from {INCIDENTS_TABLE}").pl()
    except duckdb.CatalogException:
        return None
    except duckdb.IOException as exc:  # a writer holds the file
        click.echo(f"warning: {database}: availability left out ({exc})", err=True)
        return None


@click.group("trust")
def trust() -> None:
    """Trust scores, signed audit attestations and disputes (all recorded in the ledger)."""


@trust.command("import-audit")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def import_audit(file: Path) -> None:
    """Check FILE's signature against the auditors in policy.yaml and append it to the ledger."""
    sky = _sky()
    try:
        entry = import_attestation(
            open_ledger(), file, sky.policy.auditors, [p.id for p in sky.providers]
        )
    except (AuditError, EntryError, LedgerError) as exc:
        raise click.ClickException(str(exc)) from exc
    payload = entry.payload
    click.echo(
        f"imported audit of {payload['provider']} by {payload['auditor']} "
        f"({payload['period']['start']}..{payload['period']['end']}, score {payload['score']}) "
        f"as entry {entry.seq}"
    )


@trust.command()
def scores() -> None:
    """Print each provider's trust score now, with its components (nothing is appended; the
    trust_scores asset records scores)."""
    sky = _sky()
    tiers = {p.id: p.contract.tier for p in sky.providers}
    try:
        entries = open_ledger().verified_entries()
    except LedgerError as exc:
        raise click.ClickException(f"refusing to score from the ledger: {exc}") from exc
    computed = compute_trust_scores(
        entries,
        tiers,
        sky.policy.trust,
        datetime.now(UTC),
        read_incidents(paths.duckdb_path()),
    )
    names = ("migrations", "availability", "audits", "disputes", "tier")
    click.echo(f"{'provider':<20} {'score':>7} " + " ".join(f"{n:>12}" for n in names) + "  open")
    for score in computed:
        parts = " ".join(f"{score.components[n].score:>12.4f}" for n in names)
        click.echo(
            f"{score.provider_id:<20} {score.score:>7.4f} {parts}  {len(score.open_disputes)}"
        )


@trust.group()
def dispute() -> None:
    """Open or resolve a dispute with a provider (an open dispute lowers its trust)."""


@dispute.command("open")
@click.argument("provider")
@click.option("--reason", required=True, help="What the provider is accused of.")
def open_dispute(provider: str, reason: str) -> None:
    """Open a dispute against PROVIDER; prints the dispute id."""
    known = sorted(p.id for p in _sky().providers)
    if provider not in known:
        raise click.BadParameter(f"{provider!r} is not one of {known}", param_hint="PROVIDER")
    try:
        entry = record_dispute_opened(provider, reason, _operator(), ledger=open_ledger())
    except (DisputeError, EntryError, LedgerError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"dispute {entry.seq} opened against {provider}")


@dispute.command("resolve")
@click.argument("dispute_id", metavar="ID", type=int)
@click.option(
    "--outcome", type=click.Choice(DISPUTE_OUTCOMES), default="dismissed", show_default=True
)
@click.option("--note", default="", help="How it was resolved.")
def resolve_dispute(dispute_id: int, outcome: str, note: str) -> None:
    """Resolve dispute ID (dismissed: provider not at fault; upheld: it was)."""
    try:
        ledger = open_ledger()
        entry = record_dispute_resolved(dispute_id, outcome, _operator(), note, ledger=ledger)
    except (DisputeError, EntryError, LedgerError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"dispute {dispute_id} resolved ({outcome}) as entry {entry.seq}")
