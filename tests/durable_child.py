"""The process the kill -9 test of durability runs (and kills): a tree with one durable,
persisting agent on a store. `python -m tests.durable_child send DB LOG N` sends N tells
(printing each one's number once it is acknowledged, i.e. committed), then one ask, then
waits to be killed; `... drain DB LOG 0` starts the same tree on the same store, waits
until every message recovered from it is handled, and prints what it found."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

import structlog

from actors import Agent
from supervisor import ChildSpec, Supervisor, start


class Recorder(Agent):
    """Counts what it handles and logs each message (with its redelivered flag) to LOG, a
    file that outlives the process."""

    def __init__(self, log_path: str) -> None:
        self.count = 0
        self.last = -1
        self.restored_from: dict[str, int] | None = None
        self._log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def snapshot(self) -> dict[str, int]:
        return {"count": self.count, "last": self.last}

    def restore(self, state: dict[str, Any]) -> None:
        self.count, self.last = state["count"], state["last"]
        self.restored_from = {"count": self.count, "last": self.last}

    def handle(self, message: Any) -> Any:
        if message == "end":
            return {"restored": self.restored_from, "count": self.count}
        if message == "question":
            return "an answer nobody waits for"
        if message == "poison":
            raise RuntimeError("poison")
        os.write(self._log, f"{message} {int(self.context.redelivered)}\n".encode())
        time.sleep(0.001)  # sleep-ok: a handler slower than its sender, so work is pending
        self.count += 1
        self.last = message
        return None


def tree(log_path: str) -> Supervisor:
    spec = ChildSpec("rec", Recorder, args=(log_path,), persist=True, durable=True)
    return Supervisor("root", children=[spec])


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    mode, db, log_path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = f"sqlite:///{db}?synchronous=NORMAL"  # a process crash, not a power cut
    with start(tree(log_path), store=store) as system:
        if mode == "send":
            system.tell("root/rec", "poison")
            print("poison", flush=True)
            for i in range(n):
                system.tell("root/rec", i)
                print(i, flush=True)
            system.ask_future("root/rec", "question", timeout=600.0)  # accepted = committed
            print("asked", flush=True)
            threading.Event().wait()  # until killed
        end = system.ask("root/rec", "end", timeout=600.0)
        letters = [
            {"reason": d.reason, "restored": d.restored, "preview": d.preview}
            for d in system.dead_letters("root/rec")
        ]
        print("REPORT", json.dumps({"end": end.data, "dead_letters": letters}), flush=True)


if __name__ == "__main__":
    main()
