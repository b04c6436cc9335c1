"""Start-up time of the `skyshard` command line: `--version`, `--help` and read-only commands.

Usage: .venv/bin/python bench/bench_cli_startup.py [REPEATS [CHECKOUT]]   (default 7, this one)
Runs each command REPEATS times as a fresh process on a small DuckDB file (one plan table) and
prints the median and the fastest wall time; the interpreter's own start-up is shown for
comparison. Target (issue 13): under 0.5 s on an idle machine."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "python -c pass (interpreter only)": [sys.executable, "-c", "pass"],
    "skyshard --version": ["--version"],
    "skyshard --help": ["--help"],
    "skyshard sql 'select ...'": ["sql", "select * from plan.migration_plan"],
    "skyshard plan list": ["plan", "list"],
}


def main(repeats: int, checkout: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench_cli_"))
    database = work / "skyshard.duckdb"
    env = {**os.environ, "SKYSHARD_DUCKDB": str(database), "PYTHONPATH": str(checkout)}
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from skyshard.plans import PlanStatuses, ensure_plan_schema\n"
            f"import duckdb\nensure_plan_schema(duckdb.connect({str(database)!r}), "
            f"PlanStatuses({str(database)!r}))",
        ],
        env=env,
        check=True,
    )
    entry = [sys.executable, "-c", "from skyshard.cli.main import main; main()"]
    print(f"{checkout}: {repeats} runs each, median / fastest wall time")
    for name, args in COMMANDS.items():
        command = args if args[0] == sys.executable else [*entry, *args]
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            # From the checkout: Python puts the working directory first on the path.
            subprocess.run(command, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - started)
        print(f"  {name:<40} {statistics.median(times):5.2f} s / {min(times):5.2f} s")


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 7,
        Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT,
    )
