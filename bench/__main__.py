"""`python -m bench`: every performance target of the project in one table (measure,
hivekeeper, raw pykka, ratio, target, pass/fail), then the scaling table.

Each benchmark runs in a fresh interpreter, one after the other (the machine is small: run
this when nothing else is busy). Raw pykka is measured in the same run as hivekeeper, so the
ratios hold however fast the machine is today. Takes a few minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench._table import Row, print_rows

# module, what it measures (the targets 1-6)
BENCHES = (
    ("ask_latency", "ask round trip"),
    ("tell_throughput", "tell throughput"),
    ("restart_latency", "crash -> replacement"),
    ("tree_scale", "large trees"),
    ("inspect_scale", "health and /metrics"),
    ("task_scale", "lightweight agents"),
)


def run(module: str) -> tuple[list[Row], list[str]]:
    """Its rows, and what else it printed (the scaling table)."""
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--rows"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    *notes, last = done.stdout.strip().splitlines()
    return [Row(**row) for row in json.loads(last)], notes


def main() -> None:
    rows: list[Row] = []
    notes: list[str] = []
    for module, what in BENCHES:
        print(f"... {what} (bench.{module})", file=sys.stderr, flush=True)
        got, printed = run(module)
        rows += got
        notes += printed
    print(f"hivekeeper against raw pykka, same run, {os.cpu_count()} cores")
    print_rows(rows)
    failed = [r.measure for r in rows if r.passed is False]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} targets met\n")
    print("\n".join(notes))


if __name__ == "__main__":
    main()
