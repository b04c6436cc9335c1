"""Job migrate_shard, in process, against two real sshd hosts: the move happens (or rolls back)
and the plan row, the ops tables, the ledger and the run metadata all say so."""

from __future__ import annotations

import dagster as dg
import pytest

from orchestration.migration_job import migrate_shard
from orchestration.resources import build_resources
from skyshard.config import paths
from skyshard.ledger import Ledger
from skyshard.trust.events import EntryType
from tests.migration_job.sky import add_move, decisions, plan_status

MOVE = "mv-0123456789abcdef"


def run(instance: dg.DagsterInstance, move_id: str = MOVE) -> dg.ExecuteInProcessResult:
    return migrate_shard.execute_in_process(
        run_config={"ops": {"migrate": {"config": {"move_id": move_id}}}},
        resources=build_resources(),
        instance=instance,
        raise_on_error=False,
    )


def output_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in event.step_output_data.metadata.items()}


def failure_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return {k: v.value for k, v in event.step_failure_data.user_failure_data.metadata.items()}


def ledger_entries(move_id: str = MOVE) -> list:
    ledger = Ledger.open(paths.ledger_dir())
    return [e for e in ledger.entries() if e.payload.get("move_id") == move_id]


def test_an_approved_move_migrates_the_shard(site, instance) -> None:
    site.place()
    add_move(site.db, MOVE, site.shard)
    result = run(instance)
    assert result.success
    metadata = output_metadata(result)
    assert metadata["outcome"] == "done" and metadata["error"] == ""
    assert metadata["bytes_sent"] > 0 and metadata["rounds"] >= 1
    assert metadata["downtime_ms"] > 0
    site.assert_serving("host-b")
    assert plan_status(site.db, MOVE) == "done"
    assert decisions(site.db, MOVE)[-2:] == [
        ("approved", "running", "broker"),
        ("running", "done", "broker"),
    ]
    entries = ledger_entries()
    types = [e.type for e in entries]
    assert types.count(EntryType.MIGRATION_COMPLETED) == 1
    phases = [e.payload["phase"] for e in entries if e.type == EntryType.MIGRATION_STEP]
    assert phases[0] == "accepted" and "switched" in phases and phases[-1] == "done"
    completed = entries[-1]
    assert completed.type == EntryType.MIGRATION_COMPLETED
    assert completed.run_id == result.run_id
    assert completed.payload["bytes_sent"] == metadata["bytes_sent"]
    assert (completed.payload["from_provider"], completed.payload["to_provider"]) == (
        "prov-a",
        "prov-b",
    )
    assert Ledger.open().verify().ok
    logs = [e.user_message for e in instance.all_logs(result.run_id) if e.dagster_event is None]
    assert any("MiB sent" in m for m in logs)
    assert any("step" in m and "switched" in m for m in logs)

    again = run(instance)  # a second run for the same move changes nothing
    assert again.success and output_metadata(again)["noop"] is True
    assert len(ledger_entries()) == len(entries)
    site.assert_serving("host-b")


def test_a_target_with_another_host_key_rolls_back_and_the_source_keeps_serving(
    site, instance
) -> None:
    site.place()
    add_move(site.db, MOVE, site.shard)
    files = site.files()
    files.host_keys["host-b"] = files.host_keys["host-a"]  # valid key, not host-b's
    site.write(files)
    result = run(instance)
    assert not result.success
    metadata = failure_metadata(result)
    assert metadata["outcome"] == "rolled_back" and metadata["plan_status"] == "rolled_back"
    assert "host key mismatch" in metadata["error"]
    assert plan_status(site.db, MOVE) == "rolled_back"
    assert [d[1] for d in decisions(site.db, MOVE)][-3:] == ["running", "failed", "rolled_back"]
    site.assert_serving("host-a")
    types = [e.type for e in ledger_entries()]
    assert types[-1] == EntryType.MIGRATION_ROLLED_BACK
    assert EntryType.MIGRATION_COMPLETED not in types
    assert Ledger.open().verify().ok


def test_a_grant_missing_on_the_target_refuses_the_move_before_any_connection(
    site, instance
) -> None:
    site.place()
    add_move(site.db, MOVE, site.shard)
    files = site.files()
    files.grants["prov-b"] = ["read_telemetry", "start_shard", "stop_shard", "freeze_shard"]
    site.write(files)
    log_before = site.hosts["host-b"].sshd.log()
    result = run(instance)
    assert not result.success
    metadata = failure_metadata(result)
    assert metadata["outcome"] == "rejected" and metadata["plan_status"] == "failed"
    assert "may not receive_migration on provider 'prov-b'" in metadata["error"]
    # Nothing reached the target: no login, no helper installed.
    assert "Accepted publickey" not in site.hosts["host-b"].sshd.log()[len(log_before) :]
    assert not (site.roots["host-b"] / "bin").exists()
    site.assert_serving("host-a")
    denied = list(Ledger.open(paths.ledger_dir()).entries(EntryType.ACCESS_DENIED))
    assert denied and denied[-1].payload["action"] == "receive_migration"
    assert denied[-1].run_id == result.run_id
    assert Ledger.open().verify().ok


def test_a_host_without_a_pinned_key_fails_the_move_before_any_remote_action(
    site, instance
) -> None:
    add_move(site.db, MOVE, site.shard)
    files = site.files()
    files.host_keys["host-b"] = None
    site.write(files)
    result = run(instance)
    assert not result.success
    metadata = failure_metadata(result)
    assert metadata["outcome"] == "failed" and metadata["plan_status"] == "failed"
    assert "providers[1].hosts[0].host_key" in metadata["error"]
    assert plan_status(site.db, MOVE) == "failed"
    assert ledger_entries() == []


@pytest.mark.parametrize("move_id", ["mv-../../etc", "mv-0123456789ABCDEF", "x; rm -rf /"])
def test_a_malformed_move_id_is_refused(site, instance, move_id) -> None:
    add_move(site.db, MOVE, site.shard)
    result = run(instance, move_id)
    assert not result.success
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert (
        f"move id {move_id!r} is malformed" in event.step_failure_data.user_failure_data.description
    )
    assert plan_status(site.db, MOVE) == "approved"


def test_a_move_that_is_not_approved_is_refused(site, instance) -> None:
    add_move(site.db, MOVE, site.shard, status="proposed")
    result = run(instance)
    assert not result.success
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "approve it first" in event.step_failure_data.user_failure_data.description
    assert plan_status(site.db, MOVE) == "proposed"


def test_each_move_reports_on_the_routing_asset(site, instance) -> None:
    site.place()
    add_move(site.db, MOVE, site.shard)
    moved = run(instance)
    [materialization] = moved.get_asset_materialization_events()
    assert materialization.asset_key == dg.AssetKey(["ops", "routing"])
    reported = {k: v.value for k, v in materialization.materialization.metadata.items()}
    assert reported["move_id"] == MOVE and reported["host_id"] == "host-b"
    again = run(instance)  # nothing switches: where the shard stays is observed
    assert again.get_asset_materialization_events() == []
    [observation] = again.get_asset_observation_events()
    assert observation.asset_key == dg.AssetKey(["ops", "routing"])
    assert observation.asset_observation_data.asset_observation.metadata["phase"].value == "done"
