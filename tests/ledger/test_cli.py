"""`skyshard ledger …` through click's runner, on real folders."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from click.testing import CliRunner

from skyshard.cli.ledger import ledger as ledger_cli
from skyshard.ledger import Ledger
from skyshard.ledger.checkpoint import Checkpoint
from skyshard.ledger.merkle import verify_inclusion
from skyshard.ledger.note import Ed25519Verifier, open_note
from skyshard.ledger.replica import Replica


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYSHARD_LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.setenv("SKYSHARD_HOME", str(tmp_path / "home"))
    ledger = Ledger.open()
    ledger.append_many([("run_started", f"r{i}", "broker", {"i": i}) for i in range(6)])
    ledger.append("access_denied", "r9", "broker", {"who": "op"})
    return tmp_path


def run(*args):
    return CliRunner().invoke(ledger_cli, list(args), catch_exceptions=False)


def test_verify_show_checkpoint_pubkey_proof(env):
    assert run("verify").stdout.startswith("ok: 7 entries")
    shown = run("show", "--type", "access_denied").output.splitlines()
    assert len(shown) == 1 and json.loads(shown[0])["seq"] == 6
    note = run("checkpoint").output
    vkey = run("pubkey").output.strip()
    open_note(note, [Ed25519Verifier.from_vkey(vkey)])
    proof = json.loads(run("proof", "3").output)
    verify_inclusion(
        3,
        proof["tree_size"],
        base64.b64decode(proof["leaf_hash"]),
        [base64.b64decode(h) for h in proof["hashes"]],
        Checkpoint.from_note(note).root_hash,
    )
    missing = run("proof", "99")
    assert missing.exit_code != 0 and "entry 99 does not exist" in missing.output


def test_verify_fails_with_the_first_bad_index(env):
    log = env / "ledger" / "log.jsonl"
    log.write_bytes(log.read_bytes().replace(b'"i":2', b'"i":9'))
    result = run("verify")
    assert result.exit_code == 1
    assert "FAILED at index 2" in result.output and "signature" in result.output


def test_verify_warns_about_a_torn_tail(env):
    with (env / "ledger" / "log.jsonl").open("ab") as file:
        file.write(b'{"actor"')
    result = CliRunner().invoke(ledger_cli, ["verify"])
    assert result.exit_code == 0 and "torn last line" in result.stderr


def configure_cosigner(env, name: str = "provider-a", quorum: int = 0) -> Replica:
    """A replica folder for `name`, its cosigner key pinned in policy.yaml."""
    replica = Replica.open(env / "replica", name)
    cosigner = {
        "name": name,
        "vkey": replica.cosigner.verifier().vkey(),
        "replica": str(env / "replica"),
    }
    policy = {"ledger": {"quorum": quorum, "cosigners": [cosigner]}}
    (env / "home").mkdir(exist_ok=True)
    (env / "home" / "policy.yaml").write_text(yaml.safe_dump(policy))
    return replica


def test_sync_and_export(env):
    configure_cosigner(env, quorum=1)
    assert "quorum is 1" in run("verify").output
    first = run("sync")
    assert first.exit_code == 0, first.output
    assert "provider provider-a cosigned checkpoint 7" in first.output
    assert "(1 cosigned)" in run("verify").output
    result = run("export", "--to", str(env / "export"))
    assert result.exit_code == 0
    exported = env / "export"
    assert (exported / "log.jsonl").read_bytes() == (env / "ledger" / "log.jsonl").read_bytes()
    assert (exported / "checkpoints" / "7.note").exists()
    assert "provider-a+" in (exported / "cosigner-keys.vkey").read_text()
    assert (exported / "log-keys.vkey").read_text().startswith("skyshard.local/ledger+")


def test_commands_on_a_missing_ledger_explain(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYSHARD_LEDGER_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("SKYSHARD_HOME", str(tmp_path / "home"))
    result = run("verify")
    assert result.exit_code == 1 and "no ledger at" in result.output


def test_show_on_a_corrupt_log_names_the_file(env):
    with (env / "ledger" / "log.jsonl").open("ab") as file:
        file.write(b"junk\n")
    result = run("show")
    assert result.exit_code == 1 and "log.jsonl: line is not valid JSON" in result.output


def test_pubkey_follows_rotation(env):
    before = run("pubkey").output.strip()
    ledger = Ledger.open()
    ledger.rotate_key(reason="test")
    after = run("pubkey").output.strip()
    assert after != before and after == ledger.verifier().vkey()
    assert run("verify").stdout.startswith("ok: 8 entries")
