"""Durable store: committed appends/s with group commit, against plain SQLite commits.

Run: python -m bench.durable_store     (env: SECONDS=1.0 per case, PAYLOAD=100 bytes,
DIR=a directory on the disk to measure; default: the system's temp directory)

For synchronous FULL (power-loss safe) and NORMAL (process-crash safe), WAL mode:
  raw 1 row/commit      plain sqlite3, one INSERT + COMMIT at a time (the single-row anchor)
  raw 1000 rows/commit  plain sqlite3, batches of 1,000 (what one fsync can carry)
  store, T threads      SQLiteStore.append from T threads at once, each blocking until its
                        append is committed: group commit shares one transaction between them
  store, 16 threads,    append + begin_attempt + ack per message (a durable message's
  full cycle            whole life); rate in messages/s
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench._common import quiet
from supervisor.store import SQLiteStore

SECONDS = float(os.environ.get("SECONDS", "1.0"))
PAYLOAD = b"x" * int(os.environ.get("PAYLOAD", "100"))
ROW = tuple[str, str, float, str, str, str, str]


def raw(path: Path, synchronous: str, rows_per_commit: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
    done, deadline = 0, time.perf_counter() + SECONDS
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO t (payload) VALUES (?)", [(PAYLOAD,)] * rows_per_commit)
        conn.execute("COMMIT")
        done += rows_per_commit
    rate = done / (time.perf_counter() - started)
    conn.close()
    return rate


def through_store(
    path: Path, synchronous: str, threads: int, work: Callable[[SQLiteStore, str], int]
) -> tuple[float, SQLiteStore]:
    store = SQLiteStore(path, synchronous="FULL" if synchronous == "FULL" else "NORMAL")
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def run(i: int) -> None:
        agent = f"root/agent-{i}"
        start.wait()
        while not stop.is_set():
            counts[i] += work(store, agent)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    started = time.perf_counter()
    stop.wait(SECONDS)
    stop.set()
    for w in workers:
        w.join()
    rate = sum(counts) / (time.perf_counter() - started)
    store.close()
    return rate, store


def append(store: SQLiteStore, agent: str) -> int:
    store.append(agent, PAYLOAD)
    return 1


def full_cycle(store: SQLiteStore, agent: str) -> int:
    seq = store.append(agent, PAYLOAD).seq
    store.begin_attempt(agent, seq)
    store.ack(agent, seq)
    return 1


def main() -> None:
    quiet()
    where = Path(tempfile.mkdtemp(prefix="hivekeeper-bench-", dir=os.environ.get("DIR")))
    rows: list[ROW] = []
    try:
        for mode in ("FULL", "NORMAL"):
            for n in (1, 1000):
                rate = raw(where / f"raw-{mode}-{n}.db", mode, n)
                rows.append(
                    (mode, f"raw {n} row{'s' if n > 1 else ''}/commit", rate, "", "", "", "")
                )
            cases = [(f"store, {t} thread{'s' if t > 1 else ''}", t, append) for t in (1, 4, 16)]
            cases.append(("store, 16 threads, full cycle", 16, full_cycle))
            for label, threads, work in cases:
                path = where / f"store-{mode}-{threads}-{work.__name__}.db"
                rate, store = through_store(path, mode, threads, work)
                s = store.stats()
                rows.append(
                    (
                        mode,
                        label,
                        rate,
                        str(s.batches),
                        f"{s.operations / max(1, s.batches):.1f}",
                        f"{s.commit_p50_ms:.2f}",
                        f"{s.commit_p99_ms:.2f}",
                    )
                )
    finally:
        shutil.rmtree(where, ignore_errors=True)
    print(
        f"durable store on {where.parent} (WAL), {SECONDS:g} s per case, {len(PAYLOAD)} B payloads"
    )
    header = ("sync", "case", "per s", "txns", "ops/txn", "p50 ms", "p99 ms")
    print(
        f"{header[0]:<7}{header[1]:<31}{header[2]:>10}{header[3]:>8}{header[4]:>9}{header[5]:>8}{header[6]:>8}"
    )
    for mode, label, rate, txns, per, p50, p99 in rows:
        print(f"{mode:<7}{label:<31}{rate:>10,.0f}{txns:>8}{per:>9}{p50:>8}{p99:>8}")


if __name__ == "__main__":
    main()
