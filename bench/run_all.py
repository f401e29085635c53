"""Run every benchmark in turn (minutes; run on an otherwise quiet machine)."""

from __future__ import annotations

import subprocess
import sys

BENCHES = ["ask_latency", "restart_latency", "cascade", "agent_layer"]


def main() -> None:
    for name in BENCHES:
        print(f"=== bench.{name}", flush=True)
        subprocess.run([sys.executable, "-m", f"bench.{name}"], check=True)
    print("=== bench.chaos_soak (10,000 asks; `make soak` runs the full 100,000)", flush=True)
    subprocess.run([sys.executable, "-m", "bench.chaos_soak", "--asks", "10000"], check=True)


if __name__ == "__main__":
    main()
