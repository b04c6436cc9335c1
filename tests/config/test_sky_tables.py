from __future__ import annotations

from skyshard.broker.ops_tables import OpsStore, routed_hosts
from skyshard.config import load_sky
from skyshard.config.sky_tables import shard_frame
from tests.config.conftest import write_home


def test_routing_table_decides_where_a_migrated_shard_runs(tmp_path):
    sky = load_sky(write_home(tmp_path / "home"))
    database = tmp_path / "sky.duckdb"
    store = OpsStore(database)
    store.register_route("web-000", "colo-h1", "127.0.0.1", 9000)  # configured on aws-h1
    store.register_route("web-001", "gone-h9", "127.0.0.1", 9001)  # a host no longer configured
    frame = shard_frame(sky, routed_hosts(database))
    placed = dict(zip(frame["shard_id"], frame["current_host_id"], strict=True))
    assert placed["web-000"] == "colo-h1"
    assert placed["web-001"] == "colo-h1"  # the configured host, since gone-h9 is unknown
    assert placed["web-002"] == "aws-h1"
