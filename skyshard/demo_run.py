"""`skyshard demo`: the main job on the embedded demo sky, then real migrations of the most
urgent moves over the embedded SSH hosts, checked key by key.

The demo stands in for an operator: it approves the top `DEMO_MOVES` proposed moves
(bottlenecks first) with `skyshard-demo` as the approver, runs the `migrate_shard` job for
each, and reads every key written before the move back from the shard's new location."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from skyshard import db, paths
from skyshard.config.sky import Sky
from skyshard.embedded_hosts.demo import ShardCheck, start_demo_shards, verify_demo_shards
from skyshard.plans.status import MoveStatus
from skyshard.plans.store import decide

MAIN_JOB = "planning_cycle"
MIGRATION_JOB = "migrate_shard"
DEMO_MOVES = 3
DEMO_APPROVER = "skyshard-demo"
REASON_ORDER = "CASE reason WHEN 'bottleneck' THEN 0 WHEN 'incident' THEN 1 ELSE 2 END"


def run_dagster_job(job: str, config: dict | None = None) -> None:
    """Run a job of the code location through Dagster's CLI (recorded in DAGSTER_HOME)."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    command = [dagster, "job", "execute", "-m", "orchestration.definitions", "-j", job]
    with tempfile.TemporaryDirectory() as folder:
        if config is not None:
            config_file = Path(folder) / "run_config.json"  # JSON is YAML
            config_file.write_text(json.dumps(config))
            command += ["--config", str(config_file)]
        completed = subprocess.run(command, env=os.environ.copy(), check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"Dagster job {job} failed (exit {completed.returncode})")


def dagster_dev(port: int) -> int:
    """`dagster dev` on the workspace (code location `skyshard`) until it exits; returns its
    exit code. Ctrl-C reaches it too (same process group), so it is waited for, not killed."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    workspace = Path(__file__).resolve().parent.parent / "workspace.yaml"
    command = [dagster, "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, cwd=workspace.parent, env=os.environ.copy())
    try:
        return process.wait()
    except KeyboardInterrupt:
        return process.wait()


def urgent_moves(limit: int) -> list[tuple[str, str, str, str]]:
    """(move id, shard, from host, to host) of the most urgent proposed moves."""
    with db.connect(paths.duckdb_path(), read_only=True) as con:
        return con.execute(
            "SELECT move_id, shard_id, from_host_id, to_host_id FROM plan.migration_plan "
            f"WHERE status = 'proposed' ORDER BY {REASON_ORDER}, saving_per_day DESC LIMIT ?",
            [limit],
        ).fetchall()


def migrate_demo_moves(
    sky: Sky, home: Path, say: Callable[[str], None]
) -> list[tuple[tuple[str, str, str, str], ShardCheck]]:
    """Approve, start, migrate and verify the most urgent moves; the hosts must be serving."""
    moves = urgent_moves(DEMO_MOVES)
    if not moves:
        say("no proposed moves to migrate")
        return []
    shard_ids = [shard for _, shard, _, _ in moves]
    start_demo_shards(sky, home, shard_ids)
    say(f"started {len(shard_ids)} demo shards with known keys: {', '.join(shard_ids)}")
    with db.connect(paths.duckdb_path()) as con:
        for move_id, *_ in moves:
            decide(con, move_id, MoveStatus.APPROVED, DEMO_APPROVER, "approved by skyshard demo")
    for move_id, shard, source, target in moves:
        say(f"migrating {shard}: {source} -> {target} ({move_id})")
        config = {"ops": {"migrate": {"config": {"move_id": move_id}}}}
        try:
            run_dagster_job(MIGRATION_JOB, config)
        except RuntimeError as error:
            say(f"  {error}; the move is recorded as failed or rolled back")
    checks = {c.shard_id: c for c in verify_demo_shards(shard_ids)}
    return [(move, checks[move[1]]) for move in moves]
