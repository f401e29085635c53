"""Durability: persisted agent state (ChildSpec(persist=True)) and durable mailboxes
(ChildSpec(durable=True)) in the system's store (start(tree, store=...))."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from actors import Agent, ExecutionStatus, FailureReason
from strategies import OneForOne
from supervisor import ChildSpec, FakeClock, Supervisor, render_metrics, start
from supervisor.store import SQLiteStore
from supervisor.testing import wait_until

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent


class Counter(Agent):
    def __init__(self) -> None:
        self.n = 0
        self.items: list[str] = []

    def snapshot(self) -> dict[str, Any]:
        return {"n": self.n, "items": self.items}

    def restore(self, state: dict[str, Any]) -> None:
        self.n = state["n"]
        self.items = list(state["items"])

    def handle(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash on purpose")
        if message == "get":
            return {"n": self.n, "items": self.items, "attempt": self.context.attempt}
        if message == "touch":  # changes nothing snapshot() shows, but says it did
            self.context.mark_dirty()
            return self.n
        self.n += 1
        self.items.append(str(message))
        return self.n


def _tree(**spec: Any) -> Supervisor:
    return Supervisor(
        "root",
        strategy=OneForOne(max_restarts=10),
        children=[ChildSpec("c", Counter, **spec)],
    )


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


# -- the kill -9 acceptance test ---------------------------------------------------------------


def _child(mode: str, db: Path, log: Path, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.durable_child", mode, str(db), str(log), str(n)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _log(path: Path) -> list[tuple[int, bool]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [(int(a), b == "1") for a, b in (line.split() for line in lines)]


@pytest.mark.timeout(600)
def test_kill_9_loses_no_acknowledged_message_and_keeps_the_state_of_the_last_one(
    tmp_path: Path,
) -> None:
    db, log1, log2 = tmp_path / "state.db", tmp_path / "run1.log", tmp_path / "run2.log"
    n = 10_000
    sender = _child("send", db, log1, n)
    assert sender.stdout is not None
    acknowledged: set[int] = set()
    try:
        for line in sender.stdout:  # each number is printed once its tell has returned
            word = line.strip()
            if word == "asked":
                break
            if word.isdigit():
                acknowledged.add(int(word))
        handled_before_kill = len(_log(log1))
        os.kill(sender.pid, signal.SIGKILL)  # in the middle of handling
    finally:
        sender.kill()
        sender.wait(30)
    assert acknowledged == set(range(n))
    assert 0 < handled_before_kill < n, "the kill must come while work is pending"

    drain = _child("drain", db, log2, 0)
    out, _ = drain.communicate(timeout=500)
    assert drain.returncode == 0
    report = json.loads(next(x for x in out.splitlines() if x.startswith("REPORT "))[7:])

    run1, run2 = _log(log1), _log(log2)
    first = [m for m, _ in run1]
    again = {m for m, _ in run2}
    # every acknowledged message was handled at least once
    assert set(first) | again == acknowledged
    # in order, each run
    assert first == sorted(first)
    assert [m for m, _ in run2] == sorted(again)
    # a message handled twice was in flight at the kill, and is flagged redelivered
    twice = [m for m in first if m in again]
    assert all(flag for m, flag in run2 if m in twice)
    assert twice == first[len(first) - len(twice) :]  # the tail of what run 1 handled
    # the state restored is the one saved with the last acknowledged message
    kept = first[: len(first) - len(twice)]
    restored = report["end"]["restored"]
    assert restored == {"count": len(kept), "last": kept[-1] if kept else -1}
    assert report["end"]["count"] == len(kept) + len(run2)
    # dead letters are kept too: the poison tell of run 1, and the ask whose caller died
    letters = report["dead_letters"]
    assert {"reason": "failure", "restored": True} in [
        {k: d[k] for k in ("reason", "restored")} for d in letters
    ]
    assert any(d["reason"] == "unclaimed" and not d["restored"] for d in letters)
    with SQLiteStore(db) as store:
        assert store.pending_count("root/rec") == 0


# -- persisted state ---------------------------------------------------------------------------


def test_a_crashing_agent_keeps_its_persisted_state(tmp_path: Path) -> None:
    with start(_tree(persist=True), store=_url(tmp_path)) as system:
        for word in ("a", "b", "c"):
            system.ask("root/c", word, timeout=10.0)
        assert system.ask("root/c", "crash", timeout=10.0).status is ExecutionStatus.FAILURE
        wait_until(lambda: system.health().actors["root/c"].restarts == 1)
        got = system.ask("root/c", "get", timeout=10.0).data
        assert got["n"] == 3
        assert got["items"] == ["a", "b", "c"]


def test_state_is_restored_on_the_next_start_of_the_same_tree_and_store(tmp_path: Path) -> None:
    with start(_tree(persist=True), store=_url(tmp_path)) as system:
        system.ask("root/c", "x", timeout=10.0)
        system.ask("root/c", "y", timeout=10.0)
    with start(_tree(persist=True), store=_url(tmp_path)) as system:
        assert system.ask("root/c", "get", timeout=10.0).data["items"] == ["x", "y"]
    with SQLiteStore(tmp_path / "state.db") as store:
        snap = store.load_snapshot("root/c")
    assert snap is not None
    assert json.loads(snap.data) == {"items": ["x", "y"], "n": 2}
    assert snap.version == 2  # saved once per message that changed it: "get" did not


def test_mark_dirty_saves_a_snapshot_that_compares_equal(tmp_path: Path) -> None:
    with start(_tree(persist=True), store=_url(tmp_path)) as system:
        system.ask("root/c", "x", timeout=10.0)
        system.ask("root/c", "get", timeout=10.0)
        system.ask("root/c", "touch", timeout=10.0)
    with SQLiteStore(tmp_path / "state.db") as store:
        snap = store.load_snapshot("root/c")
    assert snap is not None
    assert snap.version == 2  # "x" and "touch"


@pytest.mark.parametrize("bad", [b"not json", b"[1, 2]", b'{"n": "three"}'])
def test_a_bad_snapshot_is_a_typed_error_and_the_agent_starts_fresh(
    tmp_path: Path, bad: bytes
) -> None:
    with SQLiteStore(tmp_path / "state.db") as store:
        store.save_snapshot("root/c", bad)
    with start(_tree(persist=True), store=_url(tmp_path)) as system:
        health = system.health().actors["root/c"]
        assert health.state == "running"
        assert health.state_error is not None
        assert "could not be restored" in health.state_error
        assert system.ask("root/c", "get", timeout=10.0).data["n"] == 0  # fresh
        system.ask("root/c", "x", timeout=10.0)
        assert system.ask("root/c", "get", timeout=10.0).data["n"] == 1
        assert system.health().actors["root/c"].restarts == 0  # never a crash loop


class Unsnappable(Counter):
    def snapshot(self) -> dict[str, Any]:
        return {"lock": threading.Lock()}


def test_a_snapshot_that_cannot_be_saved_is_a_typed_error_and_the_message_is_answered(
    tmp_path: Path,
) -> None:
    tree = Supervisor("root", children=[ChildSpec("c", Unsnappable, persist=True)])
    with start(tree, store=_url(tmp_path)) as system:
        answer = system.ask("root/c", "x", timeout=10.0)
        assert answer.status is ExecutionStatus.SUCCESS
        error = system.health().actors["root/c"].state_error
        assert error is not None
        assert "JSON" in error


# -- durable mailbox ---------------------------------------------------------------------------


def test_messages_queued_at_shutdown_are_handled_on_the_next_start(tmp_path: Path) -> None:
    gate = threading.Event()

    class Slow(Counter):
        def handle(self, message: Any) -> Any:
            if message == "wait":
                gate.wait(30.0)
            return super().handle(message)

    tree = Supervisor(
        "root", children=[ChildSpec("c", Slow, persist=True, durable=True, shutdown_timeout=30)]
    )
    system = start(tree, store=_url(tmp_path))
    system.tell("root/c", "wait")
    for word in ("a", "b", "c"):
        system.tell("root/c", word)  # queued behind the waiting one
    stopper = threading.Thread(target=system.shutdown)
    stopper.start()
    wait_until(lambda: system.state == "stopping")
    gate.set()
    stopper.join(30.0)
    with start(tree, store=_url(tmp_path)) as again:
        wait_until(lambda: again.ask("root/c", "get", timeout=10.0).data["n"] == 4)
        assert again.ask("root/c", "get", timeout=10.0).data["items"] == ["wait", "a", "b", "c"]


def test_a_duplicate_by_idempotency_key_is_not_handled_twice(tmp_path: Path) -> None:
    with start(_tree(persist=True, durable=True), store=_url(tmp_path)) as system:
        system.tell("root/c", "order-1", idempotency_key="k-1")
        system.tell("root/c", "order-1", idempotency_key="k-1")  # a re-sent duplicate
        first = system.ask("root/c", "pay", timeout=10.0, idempotency_key="k-2")
        dup = system.ask("root/c", "pay", timeout=10.0, idempotency_key="k-2")
        assert first.status is ExecutionStatus.SUCCESS
        assert dup.status is ExecutionStatus.REJECTED
        assert dup.reason is FailureReason.DUPLICATE
        assert system.ask("root/c", "get", timeout=10.0).data["items"] == ["order-1", "pay"]
    with start(_tree(persist=True, durable=True), store=_url(tmp_path)) as system:
        system.tell("root/c", "order-1", idempotency_key="k-1")  # seen in an earlier run too
        assert system.ask("root/c", "get", timeout=10.0).data["n"] == 2


def test_what_a_durable_mailbox_cannot_keep_is_a_typed_error(tmp_path: Path) -> None:
    with start(_tree(durable=True), store=_url(tmp_path)) as system:
        lock = threading.Lock()
        answer = system.ask("root/c", lock, timeout=10.0)
        assert answer.status is ExecutionStatus.INVALID_INPUT
        assert "pickled" in (answer.error or "")
        with pytest.raises(TypeError, match="pickled"):
            system.tell("root/c", lock)
        with pytest.raises(TypeError, match="idempotency_key"):
            system.tell("root/c", "x", idempotency_key=7)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="idempotency_key"):
            system.tell("root/c", "x", idempotency_key=" ")
        assert system.ask("root/c", "get", timeout=10.0).data["n"] == 0


def test_an_idempotency_key_needs_a_durable_agent(tmp_path: Path) -> None:
    with start(_tree()) as system, pytest.raises(ValueError, match="durable"):
        system.tell("root/c", "x", idempotency_key="k")


# -- declarations -------------------------------------------------------------------------------


def test_durable_and_persisting_agents_need_a_store() -> None:
    with pytest.raises(ValueError, match="store="):
        start(_tree(persist=True))
    with pytest.raises(ValueError, match="store="):
        start(_tree(durable=True))


def test_bad_stores_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        start(_tree(persist=True), store="postgres://nowhere")
    with pytest.raises(TypeError):
        start(_tree(persist=True), store=42)  # type: ignore[arg-type]


def test_persist_needs_snapshot_and_restore_and_a_thread_agent() -> None:
    class Plain(Agent):
        def handle(self, message: Any) -> Any:
            return message

    with pytest.raises(ValidationError, match="snapshot"):
        ChildSpec("p", Plain, persist=True)
    with pytest.raises(ValidationError, match="isolation='thread'"):
        ChildSpec("p", Counter, persist=True, isolation="process")
    with pytest.raises(ValidationError, match="passivate_after needs persist"):
        ChildSpec("p", Counter, passivate_after=5.0)


# -- passivation -------------------------------------------------------------------------------


def test_a_passivated_conversation_agent_comes_back_with_its_state(tmp_path: Path) -> None:
    clock = FakeClock()
    with start(Supervisor("root"), store=_url(tmp_path), clock=clock) as system:
        spec = ChildSpec("conv-1", Counter, persist=True, passivate_after=60.0)
        path = system.start_child("root", spec)
        system.ask(path, "hello", timeout=10.0)
        clock.advance(30.0)
        system.ask(path, "again", timeout=10.0)  # activity: idle counts from here
        clock.advance(45.0)
        assert system.health().actors[path].state == "running"
        clock.advance(20.0)
        wait_until(lambda: system.health().actors[path].state == "passivated")
        got = system.ask(path, "get", timeout=10.0)  # wakes it, with its state
        assert got.data["items"] == ["hello", "again"]
        assert system.health().actors[path].state == "running"
        assert system.health().actors[path].restarts == 0  # not a crash
        clock.advance(61.0)
        wait_until(lambda: system.health().actors[path].state == "passivated")
        for word in ("x", "y"):
            system.tell(path, word)
        assert system.ask(path, "get", timeout=10.0).data["n"] == 4


class Attempt(Agent):
    def handle(self, message: Any) -> Any:
        return {"attempt": self.context.attempt, "redelivered": self.context.redelivered}


def test_a_process_agent_can_have_a_durable_mailbox(tmp_path: Path) -> None:
    tree = Supervisor("root", children=[ChildSpec("p", Attempt, isolation="process", durable=True)])
    with start(tree, store=_url(tmp_path)) as system:
        answer = system.ask("root/p", "x", timeout=30.0, idempotency_key="once")
        assert answer.data == {"attempt": 1, "redelivered": False}
        again = system.ask("root/p", "x", timeout=30.0, idempotency_key="once")
        assert again.reason is FailureReason.DUPLICATE
    with SQLiteStore(tmp_path / "state.db") as store:
        assert store.pending_count("root/p") == 0


class FlakyOnce(Agent):
    seen: list[int] = []

    def handle(self, message: Any) -> Any:
        FlakyOnce.seen.append(self.context.attempt)
        if self.context.attempt == 1:
            raise RuntimeError("first delivery fails")
        return {"attempt": self.context.attempt, "redelivered": self.context.redelivered}


def test_attempt_counts_a_retry_after_a_crash_too() -> None:
    FlakyOnce.seen = []
    tree = Supervisor("root", children=[ChildSpec("f", FlakyOnce, retries=1)])
    with start(tree) as system:
        answer = system.ask("root/f", "x", timeout=10.0)
    assert answer.data == {"attempt": 2, "redelivered": True}
    assert FlakyOnce.seen == [1, 2]


def test_health_and_metrics_show_the_store_and_each_durable_agent(tmp_path: Path) -> None:
    gate = threading.Event()

    class Held(Counter):
        def handle(self, message: Any) -> Any:
            if message == "hold":
                gate.wait(30.0)
            return super().handle(message)

    tree = Supervisor(
        "root",
        children=[ChildSpec("c", Held, persist=True, durable=True), ChildSpec("plain", Counter)],
    )
    with start(tree, store=_url(tmp_path)) as system:
        system.tell("root/c", "hold")
        system.tell("root/c", "queued")
        wait_until(lambda: system.health().actors["root/c"].busy)
        health = system.health()
        agent = health.actors["root/c"]
        assert (agent.durable, agent.persist) == (True, True)
        assert agent.pending_durable == 2  # the one running and the one queued
        assert agent.last_snapshot_at is None
        assert health.actors["root/plain"].pending_durable is None
        assert health.store is not None
        assert health.store.path == str(tmp_path / "state.db")
        assert health.store.synchronous == "FULL"
        assert health.store.commits >= 2
        gate.set()
        wait_until(lambda: system.health().actors["root/c"].pending_durable == 0)
        agent = system.health().actors["root/c"]
        assert agent.last_snapshot_at is not None
        body = render_metrics(system).decode()
    assert 'hivekeeper_durable_pending{path="root/c"} 0.0' in body
    assert "hivekeeper_store_commits_total" in body
    assert 'hivekeeper_store_commit_seconds{path="root",quantile="0.99"}' in body
    assert 'hivekeeper_snapshot_timestamp_seconds{path="root/c"}' in body
    assert 'hivekeeper_durable_pending{path="root/plain"}' not in body


# -- the edges: shutdown, fallbacks, a slow store, poison across runs -------------------------


def test_a_message_cut_off_at_shutdown_stays_pending_and_is_redelivered(tmp_path: Path) -> None:
    release = threading.Event()

    class Stuck(Counter):
        def handle(self, message: Any) -> Any:
            if message == "stuck" and not self.context.redelivered:
                release.wait(30.0)  # still running when shutdown_timeout ends
            if message == "stuck":
                return {"redelivered": self.context.redelivered}
            return super().handle(message)

    def tree() -> Supervisor:
        spec = ChildSpec("c", Stuck, durable=True, shutdown_timeout=0.2)
        return Supervisor("root", children=[spec])

    system = start(tree(), store=_url(tmp_path))
    system.tell("root/c", "stuck")
    wait_until(lambda: system.health().actors["root/c"].busy)
    system.shutdown()  # abandons the stuck handler after 0.2 s
    release.set()
    with start(tree(), store=_url(tmp_path)) as again:
        again.ask("root/c", "get", timeout=10.0)  # behind the redelivered one
        assert again.health().actors["root/c"].redelivered == 1
        wait_until(lambda: again.health().actors["root/c"].pending_durable == 0)


class Down(Agent):
    def snapshot(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        pass

    def handle(self, message: Any) -> Any:
        raise RuntimeError("always down")


def test_a_message_a_fallback_answers_is_acknowledged(tmp_path: Path) -> None:
    from actors import Rule, RuleBasedAgent
    from strategies import Backoff

    class Stand(RuleBasedAgent):
        rules = (Rule(when=lambda m: True, reply=lambda m: "from the fallback"),)

    clock = FakeClock()
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=10, backoff=Backoff(min_backoff=60.0, max_backoff=60.0)),
        children=[ChildSpec("d", Down, durable=True, fallback=Stand)],
    )
    with start(tree, store=_url(tmp_path), clock=clock) as system:
        first = system.ask("root/d", "one", timeout=10.0)  # crashes it: backoff follows
        assert first.data == "from the fallback"
        wait_until(lambda: system.health().actors["root/d"].state == "backoff")
        during = system.ask("root/d", "two", timeout=10.0)
        assert during.fallback_used
        wait_until(lambda: system.health().actors["root/d"].pending_durable == 0)


def test_a_durable_ask_the_store_cannot_commit_in_time_is_answered_timeout(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    try:
        with start(_tree(durable=True), store=store) as system, store._pause():
            answer = system.ask("root/c", "x", timeout=0.3)
            assert answer.status is ExecutionStatus.TIMEOUT
            assert "did not commit" in (answer.error or "")
    finally:
        store.close()


def test_a_message_that_takes_the_process_down_every_run_is_quarantined(tmp_path: Path) -> None:
    import pickle

    with SQLiteStore(tmp_path / "state.db") as store:
        seq = store.append("root/c", pickle.dumps(("deadly", False, "t-1"))).seq
        for _ in range(3):  # delivered in three runs, never acknowledged
            store.begin_attempt("root/c", seq)
        store.append("root/c", pickle.dumps(("fine", False, "t-2")))
    with start(_tree(persist=True, durable=True), store=_url(tmp_path)) as system:
        assert system.ask("root/c", "get", timeout=10.0).data["items"] == ["fine"]
        poison = system.dead_letters(reason="poison")
        assert [d.message for d in poison] == ["deadly"]


def test_async_callers_reach_a_durable_agent_without_blocking_their_loop(tmp_path: Path) -> None:
    import asyncio

    with start(_tree(persist=True, durable=True), store=_url(tmp_path)) as system:

        async def main() -> tuple[Any, Any]:
            first = await system.ask_async("root/c", "a", timeout=10.0, idempotency_key="k")
            again = await system.ask_async("root/c", "a", timeout=10.0, idempotency_key="k")
            await system.tell_async("root/c", "b")
            return first, again

        first, again = asyncio.run(main())
        assert first.status is ExecutionStatus.SUCCESS
        assert again.reason is FailureReason.DUPLICATE
        wait_until(lambda: system.ask("root/c", "get", timeout=10.0).data["n"] == 2)
