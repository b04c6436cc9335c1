"""`skyshard trust import-audit` and `skyshard trust dispute`: good and bad paths; nothing is
appended when an attestation is refused."""

from __future__ import annotations

import base64
import json

import duckdb
import pytest
from click.testing import CliRunner

from skyshard.cli.ledger import ledger as ledger_group
from skyshard.cli.trust import trust
from skyshard.config import paths
from skyshard.ledger import Ledger
from skyshard.ledger.ed25519 import SigningKey
from skyshard.trust.audit import sign_attestation

from .conftest import AUDITOR_ID, AUDITOR_KEY

ATTESTATION = {
    "auditor": AUDITOR_ID,
    "provider": "fra-colo",
    "period": {"start": "2026-10-01", "end": "2026-10-31"},
    "score": 0.92,
    "findings": [{"severity": "low", "summary": "backup restore took 3 h"}],
}


def run(*args: str):
    return CliRunner().invoke(trust, list(args), catch_exceptions=False)


def write(tmp_path, doc, name="audit.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def audit_entries():
    return list(Ledger.open(paths.ledger_dir()).entries("audit_attestation"))


def test_import_audit_appends_a_verified_attestation(sky_home, tmp_path):
    doc = sign_attestation(ATTESTATION, AUDITOR_KEY)
    result = run("import-audit", str(write(tmp_path, doc)))
    assert result.exit_code == 0, result.output
    assert "imported audit of fra-colo by acme-audit" in result.output
    [entry] = audit_entries()
    assert entry.payload == doc
    assert entry.actor == f"auditor:{AUDITOR_ID}"
    again = run("import-audit", str(write(tmp_path, doc)))
    assert again.exit_code == 1
    assert f"audit.json: signature: already imported as entry {entry.seq}" in again.output
    reencoded = run(
        "import-audit", str(write(tmp_path, doc | {"signature": reencode(doc["signature"])}))
    )
    assert (
        reencoded.exit_code == 1 and "signature: not a valid Ed25519 signature" in reencoded.output
    )
    verify = CliRunner().invoke(ledger_group, ["verify"])
    assert verify.exit_code == 0 and verify.stdout.startswith("ok: 1 entries")


def reencode(signature: str) -> str:
    """The same 64 bytes in non-canonical base64: the unused low bits of the last digit set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    changed = alphabet[alphabet.index(signature[-3]) ^ 1]
    assert base64.b64decode(signature[:-3] + changed + "==") == base64.b64decode(signature)
    return signature[:-3] + changed + "=="


def _signed(**changes):
    return sign_attestation(ATTESTATION | changes, AUDITOR_KEY)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_signed() | {"score": 0.99}, "signature: not a valid Ed25519 signature by auditor"),
        (_signed() | {"signature": "bm90IGJhc2U2NA=="}, "signature: not a valid Ed25519"),
        (_signed() | {"signature": "%%%"}, "signature: not a valid Ed25519"),
        (
            sign_attestation(ATTESTATION, SigningKey(bytes([9]) * 32)),
            "signature: not a valid Ed25519 signature by auditor acme-audit",
        ),
        (_signed(auditor="other"), "auditor: 'other' is not in policy.yaml auditors"),
        (_signed(provider="nowhere"), "provider: 'nowhere' is not one of"),
        (_signed(score=1.5), "score: 1.5 is not a number in [0, 1]"),
        (_signed(score=True), "score: True is not a number in [0, 1]"),
        (_signed(period={"start": "2026-10-31", "end": "2026-10-01"}), "period.end: 2026-10-01"),
        (_signed(period={"start": "last week", "end": "2026-10-01"}), "period.start: 'last week'"),
        (_signed(findings="none"), "findings: expected a list"),
        (_signed(findings=[{"password": "x"}]), "findings: attestation.findings[0].password"),
        (_signed(extra=1), "extra: unknown field"),
        ({k: v for k, v in _signed().items() if k != "signature"}, "signature: missing"),
        (_signed(format="v0") | {"format": "v0"}, "format: 'v0' is not 'skyshard-audit/v1'"),
        ([1, 2], "(top level): expected a JSON object"),
        ("{not json", "(file): not valid JSON"),
    ],
)
def test_bad_attestations_are_refused_naming_file_and_field(sky_home, tmp_path, doc, message):
    path = write(tmp_path, doc, "bad-audit.json")
    result = run("import-audit", str(path))
    assert result.exit_code == 1
    assert f"{path}: " in result.output
    assert message in result.output
    assert audit_entries() == []


def test_missing_file_is_named(sky_home, tmp_path):
    result = run("import-audit", str(tmp_path / "absent.json"))
    assert result.exit_code == 1
    assert f"{tmp_path / 'absent.json'}: (file): cannot read" in result.output


def test_dispute_commands_and_scores(sky_home):
    opened = run("dispute", "open", "edge-net", "--reason", "dropped traffic")
    assert opened.exit_code == 0, opened.output
    assert opened.output.strip() == "dispute 0 opened against edge-net"
    scores = run("scores")
    assert scores.exit_code == 0, scores.output
    line = next(row for row in scores.output.splitlines() if row.startswith("edge-net"))
    assert line.split()[1] == "0.4000" and line.split()[-1] == "1"  # neutral 0.5 × 0.8
    resolved = run("dispute", "resolve", "0", "--outcome", "dismissed", "--note", "our bug")
    assert resolved.exit_code == 0, resolved.output
    assert "dispute 0 resolved (dismissed) as entry 1" in resolved.output
    line = next(row for row in run("scores").output.splitlines() if row.startswith("edge-net"))
    assert line.split()[1] == "0.5000"


def test_dispute_bad_arguments(sky_home):
    unknown = run("dispute", "open", "nowhere", "--reason", "x")
    assert unknown.exit_code == 2
    assert "'nowhere' is not one of ['aws-use1', 'edge-net', 'fra-colo']" in unknown.output
    missing = run("dispute", "resolve", "5")
    assert missing.exit_code == 1
    assert "dispute 5: no dispute_opened entry has seq 5" in missing.output
    assert not (paths.ledger_dir() / "log.jsonl").exists() or not list(
        Ledger.open(paths.ledger_dir()).entries()
    )


def test_scores_use_incidents_from_the_duckdb_file(sky_home):
    with duckdb.connect(str(paths.duckdb_path())) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.fct_provider_incidents as select 'aws-use1' as provider_id, "
            "current_date as day, 0.5 as availability"
        )
    lines = run("scores").output.splitlines()
    aws = next(row for row in lines if row.startswith("aws-use1")).split()
    assert float(aws[1]) < 0.5  # a day at 50 % availability counts against it
    fra = next(row for row in lines if row.startswith("fra-colo")).split()
    assert fra[1] == "0.5000"
