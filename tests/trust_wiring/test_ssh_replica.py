"""`skyshard ledger sync` to a replica on another host over a real sshd: the host key pinned in
policy.yaml, the replica verifying and cosigning there with its own key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from skyshard.cli.ledger import ledger as ledger_cli
from skyshard.ledger import Ledger
from skyshard.ledger.replica import Replica
from tests.support.sshd import require_sshd, start_sshd, write_ed25519_key

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = "provider-a"


@pytest.fixture
def sshd(tmp_path):
    require_sshd()
    running = start_sshd(tmp_path / "sshd", extra_config=[f"SetEnv PYTHONPATH={ROOT}"])
    yield running
    running.stop()


def configure(home: Path, sshd, remote: Path, host_key: str) -> None:
    vkey = Replica.open(remote, PROVIDER).cosigner.verifier().vkey()
    cosigner = {
        "name": PROVIDER,
        "vkey": vkey,
        "replica": f"ssh://{sshd.user}@{sshd.address}:{sshd.port}{remote}",
        "host_key": host_key,
        "client_key": str(sshd.client_key_path),
        "python": sys.executable,
    }
    broker = {"id": "broker", "grants": [{"provider": "*", "actions": ["sync_ledger"]}]}
    policy = {"operators": [broker], "ledger": {"quorum": 1, "cosigners": [cosigner]}}
    home.mkdir(exist_ok=True)
    (home / "policy.yaml").write_text(yaml.safe_dump(policy))


def run(*args: str):
    return CliRunner().invoke(ledger_cli, list(args))


def test_sync_over_ssh_cosigns_and_a_wrong_host_key_is_refused(sshd, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SKYSHARD_HOME", str(home))
    remote = tmp_path / "remote"
    configure(home, sshd, remote, sshd.host_key_line)
    ledger = Ledger.open()
    ledger.append_many([("run_started", f"r{i}", "dagster", {"i": i}) for i in range(5)])
    synced = run("sync")
    assert synced.exit_code == 0, synced.output
    assert f"provider {PROVIDER} cosigned checkpoint 5" in synced.output
    assert (remote / "log.jsonl").read_bytes() == ledger.log_path.read_bytes()
    assert run("verify").exit_code == 0

    ledger.append("run_started", "r9", "dagster", {})
    impostor = write_ed25519_key(tmp_path / "impostor", "impostor")
    configure(home, sshd, remote, impostor)
    refused = run("sync")
    assert refused.exit_code == 1 and "host key" in refused.output.lower()
    assert "quorum is 1" in run("verify").output
