"""Generate a 12-provider, 1,000-shard, 14-day sky and parse every capture with the adapters.

Prints generation time, parse time (fetch + parse, no DuckDB), rows and peak memory.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from skyshard.config import load_sky
from skyshard.sim import SkyParams, write_sky
from skyshard.sources.base import Window
from skyshard.sources.fetch import fetch_for_source
from skyshard.sources.registry import ADAPTERS


def main() -> None:
    params = SkyParams(providers=12, shards=1000)
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        started = time.perf_counter()
        write_sky(params, home)
        generated = time.perf_counter() - started
        sky = load_sky(home)
        window = Window(params.start, params.end)
        rows: dict[str, int] = {}
        quarantined = 0
        prometheus_s = 0.0
        started = time.perf_counter()
        for provider in sky.providers:
            for source in provider.sources:
                adapter = ADAPTERS[source.type]
                for request in adapter.requests(source, window):
                    begun = time.perf_counter()
                    payload = fetch_for_source(source, request)
                    parsed = adapter.parse(request, payload, source, provider.id)
                    if source.type == "prometheus":
                        prometheus_s += time.perf_counter() - begun
                    quarantined += len(parsed.quarantine)
                    for name, frame in parsed.frames.items():
                        rows[name] = rows.get(name, 0) + frame.height
        parsed_s = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"sky: {params}")
    print(f"generate: {generated:.1f} s (target < 60 s)")
    print(f"fetch+parse all sources: {parsed_s:.1f} s, of which prometheus {prometheus_s:.1f} s")
    print(f"samples: {sum(rows.values()):,} rows {rows}, quarantined {quarantined}")
    print(f"peak RSS: {peak_mb:.0f} MB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
