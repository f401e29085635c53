"""isolation="task": agents without a thread, each a task on one of a few shared event loops,
with the same supervision as every other host (deadlines by cancellation, crashes, restarts,
breakers, fallbacks, ordered starts and stops, health), and what sharing a loop must not
let one agent do to another (raise SystemExit, block the loop, leave a stray callback)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from actors import Agent, RuleBasedAgent
from strategies import BreakerPolicy, OneForOne
from supervisor import (
    ChildSpec,
    ChildStartError,
    ExecutionStatus,
    FailureReason,
    FakeClock,
    Supervisor,
    TreeStartError,
    start,
)
from supervisor.testing import capture_events, wait_until

WAIT = 10.0


class Echo(Agent):
    """Answers {"echo", "uid"}; "boom" raises, "exit" raises SystemExit, "ctrl-c"
    KeyboardInterrupt, "quit" stops the agent after this message."""

    made = 0

    def __init__(self) -> None:
        Echo.made += 1
        self.uid = Echo.made

    async def handle(self, message: Any) -> Any:
        await asyncio.sleep(0)  # a real suspension: the loop runs others meanwhile
        if message == "boom":
            raise RuntimeError("boom!")
        if message == "exit":
            raise SystemExit(3)
        if message == "ctrl-c":
            raise KeyboardInterrupt
        if message == "quit":
            self.context.stop()
        return {"echo": message, "uid": self.uid}


class Waiter(Agent):
    """Awaits an asyncio event that never comes, on "wait" (a handler a deadline cancels)."""

    def __init__(self, cancelled: threading.Event | None = None) -> None:
        self.cancelled = cancelled

    async def handle(self, message: Any) -> Any:
        if message == "wait":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                if self.cancelled is not None:
                    self.cancelled.set()
                raise
        return message


class LoopBlocker(Agent):
    """On "block": blocks its event loop (a sync wait inside async def) until `gate` is set."""

    def __init__(self, gate: threading.Event, entered: threading.Event) -> None:
        self.gate = gate
        self.entered = entered

    async def handle(self, message: Any) -> Any:
        if message == "block":
            self.entered.set()
            self.gate.wait(60.0)  # the misbehaviour under test: it stalls the shared loop
            return "unblocked"
        return message


class Journal(Agent):
    """Writes its on_start / on_stop to a shared list."""

    def __init__(self, name: str, journal: list[str]) -> None:
        self.name = name
        self.journal = journal

    def on_start(self) -> None:
        self.journal.append(f"start {self.name}")

    def on_stop(self) -> None:
        self.journal.append(f"stop {self.name}")

    async def handle(self, message: Any) -> Any:
        return self.name


class SlowStart(Agent):
    """Its first instance blocks its loop in on_start until `gate` is set."""

    instances = 0

    def __init__(self, gate: threading.Event, entered: threading.Event) -> None:
        SlowStart.instances += 1
        self.first = SlowStart.instances == 1
        self.gate = gate
        self.entered = entered

    def on_start(self) -> None:
        if self.first:
            self.entered.set()
            self.gate.wait(60.0)  # the misbehaviour under test: a start that never ends

    async def handle(self, message: Any) -> Any:
        return "started fine"


class OneAtATime(Agent):
    """Fails if two of its messages ever run at once; answers the order it saw them in."""

    def __init__(self) -> None:
        self.running = False
        self.seen: list[int] = []

    async def handle(self, message: Any) -> Any:
        assert not self.running, "two messages ran at once"
        self.running = True
        await asyncio.sleep(0)
        self.seen.append(message)
        self.running = False
        return list(self.seen)


class Caller(Agent):
    """Asks `target` with ask_async and answers what it got; "blocking" uses ask()."""

    def __init__(self, target: str) -> None:
        self.target = target

    async def handle(self, message: Any) -> Any:
        if message == "blocking":
            return self.context.ask(self.target, "hi")
        answer = await self.context.ask_async(self.target, message, timeout=WAIT)
        return {"via": self.context.path, "got": answer.data, "trace": answer.trace_id}


class Stray(Agent):
    """Leaves a callback on its loop that raises SystemExit outside any handler."""

    async def handle(self, message: Any) -> Any:
        def leave() -> None:
            raise SystemExit("a stray callback")

        asyncio.get_running_loop().call_soon(leave)
        return "left one"


class Router(Agent):
    """One child agent per conversation: starts it on first sight (start_child_async), asks
    it, and stops it on "bye"; "blocking" tries the blocking start_child."""

    async def handle(self, message: Any) -> Any:
        if message == "blocking":
            return self.context.start_child("root", task("x", Echo))
        conversation, text = message
        path = f"root/{conversation}"
        if text == "bye":
            await self.context.stop_child_async(path)
            return "closed"
        if text == "hello":
            await self.context.start_child_async("root", task(conversation, Echo))
        answer = await self.context.ask_async(path, text, timeout=WAIT)
        return answer.data["echo"]


class Sync(Agent):
    def handle(self, message: Any) -> Any:
        return message


class SlowJournal(Journal):
    """A Journal whose on_start takes 5 ms (a healthy but slow start: a config read)."""

    def on_start(self) -> None:
        time.sleep(0.005)  # sleep-ok: the slow start under test (not a wait for anything)
        super().on_start()


class GatedJournal(Journal):
    """A Journal whose handler waits (off the loop) until `gate` is set."""

    def __init__(self, name: str, journal: list[str], gate: threading.Event) -> None:
        super().__init__(name, journal)
        self.gate = gate

    async def handle(self, message: Any) -> Any:
        await asyncio.to_thread(self.gate.wait, WAIT)
        return self.name


class Poller(Agent):
    """Leaves a background task running; "boom" crashes; the task records its cancel."""

    def __init__(self, cancelled: threading.Event) -> None:
        self.cancelled = cancelled

    async def handle(self, message: Any) -> Any:
        if message == "poll":
            asyncio.get_running_loop().create_task(self._forever())
            return "polling"
        if message == "stop the loop":
            asyncio.get_running_loop().stop()
            return "stopped it?"
        raise RuntimeError("boom")

    async def _forever(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


def make_sync() -> Agent:
    """A factory the declaration cannot see into: its sync agent is refused at start."""
    return Sync()


class Human(RuleBasedAgent):
    def handle(self, message: Any) -> Any:
        return {"handoff": message}


class Order(BaseModel):
    item: str
    qty: int


class Typed(Agent):
    input_model = Order

    async def handle(self, message: Any) -> Any:
        return message.qty


def task(id: str, factory: Any, **kw: Any) -> ChildSpec:
    return ChildSpec(id, factory, isolation="task", **kw)


def tree(*children: ChildSpec | Supervisor, **kw: Any) -> Supervisor:
    return Supervisor("root", strategy=OneForOne(max_restarts=100, within_seconds=60.0),
                      children=children, **kw)  # fmt: skip


# --------------------------------------------------------------------------- declaring


def test_a_task_agent_needs_an_async_handler():
    with pytest.raises(ValidationError, match="async def handle"):
        ChildSpec("s", Sync, isolation="task")


def test_a_factory_that_builds_a_sync_agent_fails_its_start_with_the_reason():
    with pytest.raises(TreeStartError, match="must be `async def handle`"):
        start(tree(task("s", make_sync)), start_timeout=WAIT)


# --------------------------------------------------------------------------- answering


def test_task_agents_answer_and_run_on_no_thread_of_their_own():
    before = threading.active_count()
    children = [task(f"a{i}", Echo) for i in range(200)]
    with start(tree(*children)) as system:
        assert threading.active_count() - before < 20  # a few loops and timers, not 200
        pending = [system.ask_future(f"root/a{i}", i, timeout=WAIT) for i in range(200)]
        answers = [p.result() for p in pending]
        assert [a.data["echo"] for a in answers] == list(range(200))
        health = system.health().actors["root/a7"]
        assert health.isolation == "task"
        assert health.pid is None


def test_messages_to_one_agent_run_one_at_a_time_in_order():
    with start(tree(task("one", OneAtATime))) as system:
        pending = [system.ask_future("root/one", i, timeout=WAIT) for i in range(50)]
        answers = [p.result() for p in pending]
        assert all(a.status is ExecutionStatus.SUCCESS for a in answers), answers[-1]
        assert answers[-1].data == list(range(50))


def test_an_input_model_refuses_bad_messages_without_a_crash():
    with start(tree(task("typed", Typed))) as system:
        bad = system.ask("root/typed", {"item": "x"}, timeout=WAIT)
        assert bad.status is ExecutionStatus.INVALID_INPUT
        assert "qty" in (bad.error or "")
        assert system.ask("root/typed", {"item": "x", "qty": 2}, timeout=WAIT).data == 2
        assert system.health().actors["root/typed"].restarts == 0


def test_task_agents_ask_each_other_without_blocking_their_loop():
    children = [task("echo", Echo), task("caller", Caller, args=("root/echo",))]
    with start(tree(*children)) as system:
        answer = system.ask("root/caller", "ping", timeout=WAIT, trace_id="t-1")
        assert answer.data["got"]["echo"] == "ping"
        assert answer.data["trace"] == "t-1"
        blocking = system.ask("root/caller", "blocking", timeout=WAIT)
        assert blocking.status is ExecutionStatus.FAILURE
        assert "ask_async" in (blocking.error or "")


# --------------------------------------------------------------------------- failing


@pytest.mark.parametrize("how", ["boom", "exit", "ctrl-c"])
def test_a_crash_of_any_kind_restarts_that_agent_only(how):
    children = [task("a", Echo), task("b", Echo)]
    with start(tree(*children)) as system:
        first = system.ask("root/a", "hi", timeout=WAIT).data["uid"]
        neighbour = system.ask("root/b", "hi", timeout=WAIT).data["uid"]
        crashed = system.ask("root/a", how, timeout=WAIT)
        assert crashed.status is ExecutionStatus.FAILURE
        after = system.ask("root/a", "again", timeout=WAIT)
        assert after.status is ExecutionStatus.SUCCESS
        assert after.data["uid"] != first  # a fresh instance
        assert system.ask("root/b", "hi", timeout=WAIT).data["uid"] == neighbour
        actors = system.health().actors
        assert actors["root/a"].restarts == 1
        assert actors["root/b"].restarts == 0


def test_a_handler_past_its_deadline_is_cancelled_answered_and_replaced():
    clock, cancelled = FakeClock(), threading.Event()
    children = [task("w", Waiter, args=(cancelled,), message_timeout=5.0), task("b", Echo)]
    with capture_events() as events, start(tree(*children), clock=clock) as system:
        hung = system.ask_future("root/w", "wait", timeout=60.0)
        queued = system.ask_future("root/w", "next", timeout=60.0)
        wait_until(lambda: system.health().actors["root/w"].busy)
        clock.advance(5.5)
        answer = hung.result()
        assert answer.status is ExecutionStatus.TIMEOUT
        assert "message_timeout=5.0" in (answer.error or "")
        assert cancelled.wait(WAIT)  # cancelled, not left running
        assert queued.result().data == "next"  # the replacement takes the queue
        events.wait_for("child_abandoned", path="root/w")
        wait_until(lambda: system.health().actors["root/w"].abandoned == 0)
        assert system.health().actors["root/w"].restarts == 1
        assert system.ask("root/b", "ok", timeout=WAIT).status is ExecutionStatus.SUCCESS


def test_a_handler_that_blocks_its_loop_does_not_stall_its_neighbours():
    gate, entered = threading.Event(), threading.Event()
    # one supervisor's declared task agents share a loop: the neighbour is on the blocked one
    children = [
        task("blocker", LoopBlocker, args=(gate, entered), message_timeout=2.0),
        task("neighbour", Echo),
    ]
    try:
        with capture_events() as events, start(tree(*children)) as system:
            blocked = system.ask_future("root/blocker", "block", timeout=30.0)
            assert entered.wait(WAIT)
            answer = system.ask("root/neighbour", "still here?", timeout=30.0)
            assert answer.status is ExecutionStatus.SUCCESS, answer
            stalled = events.wait_for("task_loop_stalled")
            assert stalled[0]["agents"] >= 1
            assert blocked.result().status is ExecutionStatus.TIMEOUT
            gate.set()
            events.wait_for("late_result_discarded", path="root/blocker")
            again = system.ask("root/blocker", "ok", timeout=30.0)
            assert again.data == "ok"
    finally:
        gate.set()


def test_a_stray_callback_that_raises_system_exit_leaves_the_loop_running():
    children = [task("stray", Stray), task("b", Echo)]
    with capture_events() as events, start(tree(*children)) as system:
        assert system.ask("root/stray", "go", timeout=WAIT).data == "left one"
        events.wait_for("task_loop_error")
        assert system.ask("root/b", "hi", timeout=WAIT).status is ExecutionStatus.SUCCESS
        assert system.ask("root/stray", "again", timeout=WAIT).data == "left one"


def test_a_breaker_opens_and_the_fallback_answers_for_a_crashing_task_agent():
    policy = BreakerPolicy(fail_max=2, reset_timeout=60.0)
    spec = task("a", Echo, breaker=policy, fallback=Human)
    with start(tree(spec)) as system:
        answers = [system.ask("root/a", "boom", timeout=WAIT) for _ in range(3)]
        assert answers[-1].fallback_used
        assert answers[-1].data == {"handoff": "boom"}
        assert system.health().actors["root/a"].breaker.state == "open"
        rejected = system.ask("root/a", "hi", timeout=WAIT)
        assert rejected.fallback_used
        assert rejected.reason in (None, FailureReason.BREAKER_OPEN)


def test_an_agent_that_stops_itself_is_not_restarted_when_transient():
    with start(tree(task("q", Echo, restart="transient"))) as system:
        assert system.ask("root/q", "quit", timeout=WAIT).status is ExecutionStatus.SUCCESS
        wait_until(lambda: system.health().actors["root/q"].state == "stopped")


# --------------------------------------------------------------------------- lifecycle


def test_declared_task_agents_start_in_order_and_stop_in_reverse_order():
    journal: list[str] = []
    names = [f"j{i}" for i in range(600)]  # more than one start step (256)
    children = [task(n, Journal, args=(n, journal)) for n in names]
    with start(tree(*children)):
        assert journal == [f"start {n}" for n in names]
    assert journal[len(names) :] == [f"stop {n}" for n in reversed(names)]


def test_a_declared_task_agent_whose_start_hangs_is_replaced_at_its_start_timeout():
    clock, gate, entered = FakeClock(), threading.Event(), threading.Event()
    SlowStart.instances = 0
    children = [task("before", Echo), task("slow", SlowStart, args=(gate, entered),
                start_timeout=5.0), task("after", Echo)]  # fmt: skip
    started: list[Any] = []
    booting = threading.Thread(target=lambda: started.append(start(tree(*children), clock=clock)))
    try:
        with capture_events() as events:
            booting.start()
            assert entered.wait(WAIT)
            clock.advance(6.0)  # past the start_timeout of the step that started it
            exited = events.wait_for("child_exited", path="root/slow")
            assert "start_timeout=5.0" in exited[0]["reason"]
            booting.join(WAIT)
            assert started, "the tree did not start"
            system = started[0]
            assert system.ask("root/slow", "hi", timeout=WAIT).data == "started fine"
            assert system.ask("root/after", "hi", timeout=WAIT).data["echo"] == "hi"
            assert system.health().actors["root/slow"].restarts == 1
    finally:
        gate.set()
        booting.join(WAIT)
        if started:
            started[0].shutdown()


def test_slow_but_healthy_starts_are_not_a_stall_nor_late():
    journal: list[str] = []
    names = [f"s{i}" for i in range(300)]  # 1.5 s of on_start in one loop, 1 s start_timeout
    children = [task(n, SlowJournal, args=(n, journal), start_timeout=1.0) for n in names]
    with capture_events() as events, start(tree(*children), start_timeout=60.0) as system:
        assert journal == [f"start {n}" for n in names]
        assert not events.matching("task_loop_stalled")
        assert not events.matching("child_exited")
        assert sum(a.restarts for a in system.health().actors.values()) == 0


def test_a_busy_agent_at_shutdown_still_stops_in_reverse_order():
    journal: list[str] = []
    gate = threading.Event()
    children = [task(n, GatedJournal, args=(n, journal, gate)) for n in ("a", "b", "c")]
    system = start(tree(*children))
    busy = system.ask_future("root/b", "work", timeout=WAIT)
    wait_until(lambda: system.health().actors["root/b"].busy)
    stopping = threading.Thread(target=system.shutdown)
    stopping.start()
    try:
        wait_until(lambda: "stop c" in journal)
        gate.set()  # b finishes its message, then stops; a only after it
        stopping.join(WAIT)
    finally:
        gate.set()
        stopping.join(WAIT)
    assert busy.result().data == "b"
    assert journal[3:] == ["stop c", "stop b", "stop a"]


def test_what_an_agent_leaves_running_ends_with_it_and_loop_stop_is_ignored():
    cancelled = threading.Event()
    with start(tree(task("p", Poller, args=(cancelled,)), task("b", Echo))) as system:
        assert system.ask("root/p", "poll", timeout=WAIT).data == "polling"
        assert not cancelled.is_set()
        system.ask("root/p", "boom", timeout=WAIT)  # this incarnation ends
        assert cancelled.wait(WAIT)
        assert system.ask("root/p", "stop the loop", timeout=WAIT).data == "stopped it?"
        assert system.ask("root/b", "hi", timeout=WAIT).status is ExecutionStatus.SUCCESS


def test_start_child_and_stop_child_of_task_agents():
    with start(tree()) as system:
        paths = [system.start_child("root", task(f"c{i}", Echo)) for i in range(100)]
        assert system.ask(paths[42], "hi", timeout=WAIT).data["echo"] == "hi"
        for path in paths[:50]:
            system.stop_child(path)
        left = [p for p in system.health().actors if p.startswith("root/c")]
        assert sorted(left) == sorted(paths[50:])


def test_a_task_agent_starts_and_stops_an_agent_per_conversation():
    with start(tree(task("router", Router))) as system:
        for i in range(20):
            assert system.ask("root/router", (f"c{i}", "hello"), timeout=WAIT).data == "hello"
        assert system.ask("root/router", ("c3", "more"), timeout=WAIT).data == "more"
        assert system.ask("root/router", ("c3", "bye"), timeout=WAIT).data == "closed"
        actors = system.health().actors
        assert "root/c3" not in actors
        assert actors["root/c4"].isolation == "task"
        refused = system.ask("root/router", "blocking", timeout=WAIT)
        assert refused.status is ExecutionStatus.FAILURE
        assert "start_child_async" in (refused.error or "")


def test_a_dynamic_task_agent_that_fails_its_first_start_is_discarded():
    with start(tree(task("ok", Echo))) as system:
        with pytest.raises(ChildStartError, match="async def handle"):
            system.start_child("root", task("bad", make_sync))
        assert "root/bad" not in system.health().actors
        assert system.ask("root/ok", "hi", timeout=WAIT).status is ExecutionStatus.SUCCESS


def test_persisted_state_of_a_task_agent_survives_its_crash(tmp_path):
    class Tally(Agent):
        def __init__(self) -> None:
            self.n = 0

        def snapshot(self) -> dict[str, int]:
            return {"n": self.n}

        def restore(self, state: dict[str, int]) -> None:
            self.n = state["n"]

        async def handle(self, message: Any) -> Any:
            if message == "boom":
                raise RuntimeError("boom")
            self.n += 1
            self.context.mark_dirty()
            return self.n

    store = f"sqlite:///{tmp_path / 'state.db'}"
    with start(tree(task("t", Tally, persist=True)), store=store) as system:
        assert [system.ask("root/t", "+", timeout=WAIT).data for _ in range(3)] == [1, 2, 3]
        system.ask("root/t", "boom", timeout=WAIT)
        assert system.ask("root/t", "+", timeout=WAIT).data == 4


class Notes(Agent):
    """Keeps what it was told (persisted); "get" answers it."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def snapshot(self) -> dict[str, list[str]]:
        return {"items": self.items}

    def restore(self, state: dict[str, list[str]]) -> None:
        self.items = list(state["items"])

    async def handle(self, message: Any) -> Any:
        if message != "get":
            self.items.append(message)
        return list(self.items)


def test_a_passivated_task_agent_comes_back_with_its_state(tmp_path):
    clock = FakeClock()
    store = f"sqlite:///{tmp_path / 'state.db'}"
    with start(tree(), store=store, clock=clock) as system:
        spec = task("conv", Notes, persist=True, passivate_after=60.0)
        path = system.start_child("root", spec)
        system.ask(path, "hello", timeout=WAIT)
        clock.advance(61.0)
        wait_until(lambda: system.health().actors[path].state == "passivated")
        assert system.ask(path, "get", timeout=WAIT).data == ["hello"]  # woken, with its state
        assert system.health().actors[path].state == "running"
        assert system.health().actors[path].restarts == 0


def test_a_durable_task_agent_refuses_a_duplicate_send(tmp_path):
    store = f"sqlite:///{tmp_path / 'state.db'}"
    with start(tree(task("d", Notes, durable=True)), store=store) as system:
        first = system.ask("root/d", "order-1", timeout=WAIT, idempotency_key="k1")
        assert first.data == ["order-1"]
        again = system.ask("root/d", "order-1", timeout=WAIT, idempotency_key="k1")
        assert again.reason is FailureReason.DUPLICATE
        assert system.health().actors["root/d"].pending_durable == 0


def test_ten_thousand_task_agents_start_and_answer_at_once():
    children = [task(f"a{i}", Echo) for i in range(10_000)]
    with start(tree(*children), start_timeout=120.0) as system:
        pending = [system.ask_future(f"root/a{i}", i, timeout=120.0) for i in range(10_000)]
        answers = [p.result() for p in pending]
        assert sum(a.status is ExecutionStatus.SUCCESS for a in answers) == 10_000
        assert [a.data["echo"] for a in answers[:3]] == [0, 1, 2]
