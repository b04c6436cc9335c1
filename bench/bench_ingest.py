"""Ingestion + dbt build wall time and peak memory on a simulated sky (issue 2's benchmark).

Usage: .venv/bin/python bench/bench_ingest.py [--shards 1000] [--providers 12] [--days 14]
       [--reingest]
The sky is generated first (not timed); then every feed is fetched, parsed and written to a
fresh DuckDB file, and `dbt build` runs on it, exactly as the `ingest_and_build` job does.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from skyshard import db
from skyshard.config import load_sky
from skyshard.config.sky_tables import sky_frames
from skyshard.sim import SkyParams, write_sky
from skyshard.sources import ingest
from skyshard.sources.base import Window

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--providers", type=int, default=12)
    parser.add_argument("--hosts-per-provider", type=int, default=4)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument(
        "--reingest",
        action="store_true",
        help="also time a second ingest into the filled file (what every scheduled run does)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="skyshard-bench-"))
    params = SkyParams(
        providers=args.providers,
        hosts_per_provider=args.hosts_per_provider,
        shards=args.shards,
        days=args.days,
    )
    started = time.perf_counter()
    write_sky(params, work / "sky")
    print(f"generated sky in {time.perf_counter() - started:.1f} s (not counted)")

    duckdb_path = work / "skyshard.duckdb"
    os.environ["SKYSHARD_DUCKDB"] = str(duckdb_path)
    sky = load_sky(work / "sky")
    now = datetime.now(UTC).replace(tzinfo=None)
    window = Window(now - timedelta(days=args.days), now)

    t0 = time.perf_counter()
    with db.connect(duckdb_path) as con:
        for name, frame in sky_frames(sky, {}).items():
            db.replace_table(con, f"raw.{name}", frame)
    results = ingest.ingest_all(sky, window, duckdb_path)
    t2 = time.perf_counter()
    with db.connect(duckdb_path, read_only=True) as con:
        rows = sum(db.table_counts(con, "raw").values())
    dbt = Path(sys.executable).with_name("dbt")
    subprocess.run(
        [str(dbt), "build", "--profiles-dir", ".", "--quiet"],
        cwd=ROOT / "dbt_project",
        check=True,
        env={**os.environ, "DO_NOT_TRACK": "1"},
    )
    t3 = time.perf_counter()

    failed = [c.source.id for c in results if not c.ok]
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    shards = len(sky.shards)
    print(
        f"sky: {len(sky.providers)} providers, {len(sky.hosts)} hosts, {shards} shards, "
        f"{args.days} days @ 5 min"
    )
    print(f"raw rows: {rows:,}; failed feeds: {failed or 'none'}")
    print(f"ingest (fetch, parse, write): {t2 - t0:.1f} s")
    print(f"dbt build:             {t3 - t2:.1f} s")
    print(f"total ingest + dbt:    {t3 - t0:.1f} s  (target < 60 s)")
    print(f"peak RSS: python {own_peak:.0f} MiB, dbt {child_peak:.0f} MiB")
    if args.reingest:
        t4 = time.perf_counter()
        again = ingest.ingest_all(sky, window, duckdb_path)
        with db.connect(duckdb_path, read_only=True) as con:
            after = sum(db.table_counts(con, "raw").values())
        print(
            f"re-ingest into the filled file: {time.perf_counter() - t4:.1f} s; "
            f"raw rows {after:,} (unchanged: {after == rows}); "
            f"failed feeds: {[c.source.id for c in again if not c.ok] or 'none'}"
        )


if __name__ == "__main__":
    main()
