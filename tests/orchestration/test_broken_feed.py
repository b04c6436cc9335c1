"""One broken provider feed degrades only that provider: the asset succeeds for the others,
logs a warning, and the feed's own check fails with the reason."""

from __future__ import annotations

import logging
import shutil

import dagster as dg
import duckdb

from skyshard.config import load_sky


def test_broken_feed_fails_its_check_only(small_sky, tmp_path, monkeypatch):
    from orchestration.definitions import build_definitions

    home = tmp_path / "sky"
    shutil.copytree(small_sky, home)
    # providers.yaml holds absolute file:// URLs into the original home: rewrite them.
    providers = home / "providers.yaml"
    providers.write_text(providers.read_text().replace(str(small_sky), str(home)))
    (home / "captures/cloud-a/prometheus/shard_cpu.json").write_text('{"status": "succ')
    monkeypatch.setenv("SKYSHARD_HOME", str(home))
    database = tmp_path / "broken.duckdb"
    monkeypatch.setenv("SKYSHARD_DUCKDB", str(database))

    defs = build_definitions(load_sky(home))
    telemetry = defs.resolve_assets_def(dg.AssetKey(["raw", "shard_usage"]))
    config = defs.resolve_assets_def(dg.AssetKey(["raw", "sky_shards"]))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([config, telemetry], instance=instance)

    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    broken = checks["feed_cloud_a_prometheus"]
    assert not broken.passed
    assert "cloud-a-prometheus" in broken.metadata["error"].value
    assert "shard_cpu.json" in broken.metadata["error"].value
    healthy = [
        c for name, c in checks.items() if name.startswith("feed_") and name != broken.check_name
    ]
    assert healthy and all(c.passed for c in healthy)
    warnings = [
        record.user_message
        for record in instance.all_logs(result.run_id)
        if record.level == logging.WARNING
    ]
    assert any("feed cloud-a-prometheus failed" in message for message in warnings)

    with duckdb.connect(str(database), read_only=True) as con:
        providers_with_usage = {
            row[0]
            for row in con.execute("select distinct provider_id from raw.shard_usage").fetchall()
        }
    assert "cloud-a" not in providers_with_usage
    assert {"cloud-b", "cloud-c"} <= providers_with_usage
