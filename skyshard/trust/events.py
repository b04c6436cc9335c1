"""skyshard's ledger entry types and the one place their payloads are built: runs, migrations,
access denials, policy decisions, disputes, trust scores and audits. Every caller appends
through a function here, never a raw type."""

from __future__ import annotations

import getpass
import mmap
import socket
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from skyshard.ledger import Entry, Ledger, Record
from skyshard.ledger.entry import (
    KEY_ROTATION,
    EntryError,
    canonical_json,
    check_no_secrets,
    parse_line,
    utc_timestamp,
)
from skyshard.ledger.log import LOG_FILE
from skyshard.trust.contracts import Decision

if TYPE_CHECKING:
    from skyshard.config.policy import TrustPolicy
    from skyshard.transport.access import Denial
    from skyshard.trust.scores import TrustScore


class EntryType(StrEnum):
    RUN_STARTED = "run_started"
    RUN_SUCCEEDED = "run_succeeded"
    RUN_FAILED = "run_failed"
    MIGRATION_STEP = "migration_step"
    MIGRATION_COMPLETED = "migration_completed"
    MIGRATION_ROLLED_BACK = "migration_rolled_back"
    TRUST_SCORE = "trust_score"
    AUDIT_ATTESTATION = "audit_attestation"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_RESOLVED = "dispute_resolved"
    POLICY_DECISION = "policy_decision"
    OPERATOR_DECISION = "operator_decision"
    ACCESS_DENIED = "access_denied"
    KEY_ROTATION = KEY_ROTATION


RUN_EVENTS = (EntryType.RUN_STARTED, EntryType.RUN_SUCCEEDED, EntryType.RUN_FAILED)
PROVIDER_TAGS = ("skyshard/provider", "skyshard/from_provider", "skyshard/to_provider")
"""Run tags that name the providers a run acted on (their failures count against them)."""
MAX_ERROR_CHARS = 2000


def entries_of_run(ledger: Ledger, run_id: str) -> list[Entry]:
    """Entries with this run id, found by a byte search of the log (no full parse)."""
    path = ledger.directory / LOG_FILE
    if not path.exists() or path.stat().st_size == 0:
        return []
    needle = b'"run_id":' + canonical_json(run_id) + b","
    found = []
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        position = data.find(needle)
        while position >= 0:
            start = data.rfind(b"\n", 0, position) + 1
            end = data.find(b"\n", position)
            if end < 0:  # a torn last line is never an entry
                break
            entry = parse_line(data[start:end])
            if entry.run_id == run_id:
                found.append(entry)
            position = data.find(needle, end)
    return found


def public_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Run tags without any that look like secrets (those never reach the ledger)."""
    kept = {}
    for key, value in tags.items():
        try:
            check_no_secrets({key: value})
        except EntryError:
            continue
        kept[key] = value
    return kept


def record_run_event(
    event: EntryType | str,
    run_id: str,
    job_name: str,
    tags: Mapping[str, str] | None = None,
    asset_keys: Iterable[str] = (),
    *,
    error: str | None = None,
    ledger: Ledger | None = None,
    actor: str = "dagster",
) -> Entry | None:
    """Append run_started / run_succeeded / run_failed for a run, once: returns None when the
    ledger already holds this event for this run (a sensor evaluated twice). An outcome seen
    before its start (sensors race) is appended right after a run_started, so every run's
    entries read started, then outcome."""
    event = EntryType(event)
    if event not in RUN_EVENTS:
        raise ValueError(f"event {event.value!r} is not one of {[e.value for e in RUN_EVENTS]}")
    ledger = ledger or Ledger.open()
    recorded = {e.type for e in entries_of_run(ledger, run_id)}
    if event in recorded or (event == EntryType.RUN_STARTED and recorded):
        return None
    kept = public_tags(tags or {})
    payload: dict[str, Any] = {
        "job": job_name,
        "tags": kept,
        "asset_keys": sorted(asset_keys),
        "providers": sorted({kept[t] for t in PROVIDER_TAGS if t in kept}),
    }
    records = []
    if event != EntryType.RUN_STARTED and EntryType.RUN_STARTED not in recorded:
        records.append(Record(EntryType.RUN_STARTED, run_id, actor, {**payload, "late": True}))
    if error is not None:
        payload["error"] = error[:MAX_ERROR_CHARS]
    records.append(Record(event, run_id, actor, payload))
    return ledger.append_many(records)[-1]


def migration_payload(
    move_id: str,
    shard_id: str,
    from_provider: str,
    to_provider: str,
    bytes_sent: int = 0,
    **detail: Any,
) -> dict[str, Any]:
    """The payload of every migration entry: scores and settlement read these field names."""
    return {
        "move_id": move_id,
        "shard_id": shard_id,
        "from_provider": from_provider,
        "to_provider": to_provider,
        "bytes_sent": int(bytes_sent),
        **detail,
    }


def record_migration(
    type: EntryType | str,
    run_id: str,
    payload: Mapping[str, Any],
    *,
    ledger: Ledger | None = None,
    actor: str = "broker",
) -> Entry:
    """Append a migration_step / migration_completed / migration_rolled_back entry whose payload
    was built by `migration_payload`."""
    type = EntryType(type)
    if type not in (
        EntryType.MIGRATION_STEP,
        EntryType.MIGRATION_COMPLETED,
        EntryType.MIGRATION_ROLLED_BACK,
    ):
        raise ValueError(f"type {type.value!r} is not a migration entry type")
    missing = [
        f for f in ("move_id", "shard_id", "from_provider", "to_provider") if f not in payload
    ]
    if missing:
        raise ValueError(f"migration payload is missing field(s): {', '.join(missing)}")
    return (ledger or Ledger.open()).append(type, run_id, actor, dict(payload))


def record_access_denied(
    denial: Denial, *, run_id: str = "", ledger: Ledger | None = None
) -> Entry:
    """`AccessPolicy(..., on_denied=record_access_denied)`: one access_denied entry per refusal."""
    payload = {"operator": denial.operator, "provider": denial.provider, "action": denial.action}
    return (ledger or Ledger.open()).append(
        EntryType.ACCESS_DENIED, run_id, denial.operator, payload
    )


class DisputeError(ValueError):
    """A dispute id that does not name an open dispute."""


def record_dispute_opened(
    provider_id: str, reason: str, actor: str, *, ledger: Ledger | None = None
) -> Entry:
    """Open a dispute against a provider; its id is the seq of the returned entry."""
    if not reason.strip():
        raise DisputeError("reason must not be empty")
    payload = {"provider": provider_id, "reason": reason}
    return (ledger or Ledger.open()).append(EntryType.DISPUTE_OPENED, "", actor, payload)


DISPUTE_OUTCOMES = ("dismissed", "upheld")
"""dismissed: the provider was not at fault; upheld: it was (counts against its trust)."""


def record_dispute_resolved(
    dispute_id: int, outcome: str, actor: str, note: str = "", *, ledger: Ledger | None = None
) -> Entry:
    """Resolve the open dispute opened by entry `dispute_id`."""
    ledger = ledger or Ledger.open()
    if outcome not in DISPUTE_OUTCOMES:
        raise DisputeError(f"outcome {outcome!r} is not one of {list(DISPUTE_OUTCOMES)}")
    opened = {e.seq: e for e in ledger.verified_entries(EntryType.DISPUTE_OPENED)}
    if dispute_id not in opened:
        raise DisputeError(f"dispute {dispute_id}: no dispute_opened entry has seq {dispute_id}")
    for entry in ledger.verified_entries(EntryType.DISPUTE_RESOLVED):
        if entry.payload.get("dispute") == dispute_id:
            raise DisputeError(f"dispute {dispute_id} was already resolved by entry {entry.seq}")
    payload = {
        "dispute": dispute_id,
        "provider": opened[dispute_id].payload["provider"],
        "outcome": outcome,
        "note": note,
    }
    return ledger.append(EntryType.DISPUTE_RESOLVED, "", actor, payload)


def record_operator_decision(
    move: Mapping[str, Any], decision: str, by: str, reason: str | None, via: str, ledger: Ledger
) -> Entry:
    """An operator approved or rejected a move: who (`by`, and the OS user), why, and from
    where (`via`: cli or a Dagster job, and the host)."""
    payload = {
        "move_id": move["move_id"],
        "shard_id": move["shard_id"],
        "from_host_id": move["from_host_id"],
        "to_host_id": move["to_host_id"],
        "decision": decision,
        "by": by,
        "reason": reason or "",
        "via": via,
        "host": socket.gethostname(),
        "os_user": _os_user(),
    }
    return ledger.append(EntryType.OPERATOR_DECISION, "", by, payload)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def record_policy_decisions(
    decisions: Sequence[Decision], run_id: str, actor: str, ledger: Ledger
) -> list[Entry]:
    """Append contract decisions (each with its policy hash) as policy_decision entries, one
    write for all of them."""
    records = [Record(EntryType.POLICY_DECISION, run_id, actor, d.payload()) for d in decisions]
    return ledger.append_many(records) if records else []


def record_trust_score_entries(
    ledger: Ledger,
    scores: Sequence[TrustScore],
    policy: TrustPolicy,
    as_of: datetime,
    run_id: str = "",
) -> list[Entry]:
    """One trust_score entry per score with its breakdown, one write for all of them."""
    at = utc_timestamp(as_of)
    records = [
        Record(
            EntryType.TRUST_SCORE,
            run_id,
            "trust_scores",
            {
                "provider": s.provider_id,
                "score": s.score,
                "as_of": at,
                "neutral_score": policy.neutral_score,
                "half_life_days": policy.half_life_days,
                **s.breakdown(),
            },
        )
        for s in scores
    ]
    return ledger.append_many(records) if records else []


def record_audit(ledger: Ledger, attestation: Mapping[str, Any]) -> Entry:
    """Append a verified audit attestation (see `audit.verify_attestation`) as it was signed."""
    actor = f"auditor:{attestation['auditor']}"
    return ledger.append(EntryType.AUDIT_ATTESTATION, "", actor, dict(attestation))
