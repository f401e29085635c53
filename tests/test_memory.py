"""Memory stays bounded: dead letters keep a preview, not the payload; a removed child is
freed at once (cancelled timers let go of their callbacks, the timer heap is compacted)."""

from __future__ import annotations

import gc
import threading
import tracemalloc
import weakref
from typing import Any

from supervisor import ChildSpec, Supervisor, start
from supervisor._clock import MonotonicClock
from supervisor._scheduler import Scheduler
from supervisor.delivery._dead_letters import PREVIEW_CHARS, DeadLetterOffice, summarize
from tests.agents import Blocking, Echo, Gate

# -- dead letters ---------------------------------------------------------------------------


class Payload:
    """A large message that can be watched with a weakref."""

    def __init__(self, i: int) -> None:
        self.data = bytes(2**20)
        self.i = i

    def __repr__(self) -> str:
        return f"Payload({self.i})"


def overflowing_tree(gate: Gate) -> Supervisor:
    return Supervisor(
        "root",
        children=[
            ChildSpec("w", Blocking, args=(gate,), mailbox_size=1, overflow="drop_oldest"),
        ],
    )


def test_dropped_payloads_are_not_kept_by_their_dead_letters():
    gate = Gate()
    refs: list[weakref.ref[Payload]] = []
    with start(overflowing_tree(gate)) as system:
        busy = system.ask_future("root/w", "block", timeout=30.0)
        gate.wait_entered()
        for i in range(40):
            payload = Payload(i)
            refs.append(weakref.ref(payload))
            system.tell("root/w", payload)
            del payload
        letters = system.dead_letters(reason="mailbox_overflow")
        assert len(letters) == 39  # the last one is still queued
        gc.collect()
        alive = [r().i for r in refs if r() is not None]  # type: ignore[union-attr]
        assert alive == [39]
        first = letters[0]
        assert first.message is None
        assert first.message_type == "Payload"
        assert first.preview == "Payload(0)"
        gate.release()
        busy.result()


def test_dead_letters_of_large_strings_stay_small():
    gate = Gate()
    size = 2**20
    with start(overflowing_tree(gate)) as system:
        busy = system.ask_future("root/w", "block", timeout=30.0)
        gate.wait_entered()
        system.tell("root/w", "warm-up")
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for i in range(30):
                system.tell("root/w", str(i).rjust(size, "x"))  # a new 1 MiB string each time
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert after - before < 8 * size  # one payload is still queued; 30 would be 30 MiB
        letter = system.dead_letters(reason="mailbox_overflow")[-1]
        assert letter.message is None
        assert (letter.message_type, letter.message_size) == ("str", size)
        assert letter.preview.startswith("x" * 10)
        assert len(letter.preview) <= PREVIEW_CHARS + 3
        gate.release()
        busy.result()


def test_small_payloads_are_kept_and_previews_are_redacted():
    office = DeadLetterOffice()
    office.post(path="p", reason="failure", message="q0", message_id=1, trace_id="t", attempts=1)
    secret = {"api_key": "sk-abcdefghijklmnopqrstuvwx", "text": "hello"}
    office.post(path="p", reason="failure", message=secret, message_id=2, trace_id="t", attempts=1)
    small, big = office.letters()
    assert (small.message, small.message_type, small.message_size) == ("q0", "str", 2)
    assert big.message is None  # only scalars and short strings / bytes are kept
    assert big.message_type == "dict"
    assert "sk-abcdef" not in big.preview
    assert "hello" in big.preview
    assert "sk-abc" not in summarize("Authorization: Bearer sk-abcdefghijklmnopqrstuvwx")[3]


def test_summaries_of_odd_payloads_are_bounded_and_never_raise():
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    kept, type_name, _, preview = summarize(Unprintable())
    assert (kept, type_name, preview) == (None, "Unprintable", "<Unprintable>")
    kept, _, size, preview = summarize(10**20000)  # str() of it would raise
    assert kept is None
    assert size > 19_000
    assert len(preview) <= PREVIEW_CHARS + 3
    kept, _, size, preview = summarize(list(range(1_000_000)))
    assert kept is None
    assert size > 1_000_000
    assert len(preview) <= PREVIEW_CHARS + 3
    assert summarize(b"x" * 2000)[0] is None
    assert summarize(b"x" * 10)[0] == b"x" * 10


# -- timers and removed children --------------------------------------------------------------


class Callback:
    def __init__(self) -> None:
        self.fired = threading.Event()

    def __call__(self) -> None:
        self.fired.set()


def test_a_cancelled_timer_lets_go_of_its_callback_at_once():
    scheduler = Scheduler(MonotonicClock())
    try:
        callback = Callback()
        ref = weakref.ref(callback)
        timer = scheduler.call_later(3600.0, callback)
        del callback
        timer.cancel()
        gc.collect()
        assert ref() is None
    finally:
        scheduler.stop()


def test_the_timer_heap_is_compacted_when_cancelled_timers_outnumber_live_ones():
    scheduler = Scheduler(MonotonicClock())
    try:
        live = [scheduler.call_later(3600.0, Callback()) for _ in range(10)]
        doomed = [scheduler.call_later(3600.0 + i, Callback()) for i in range(1000)]
        for timer in doomed:
            timer.cancel()
        assert scheduler.pending() == 10
        assert scheduler.queued() <= 2 * 10 + 64
        soon = Callback()
        scheduler.call_later(0.0, soon)
        assert soon.fired.wait(10.0)  # the heap still works after compaction
        for timer in live:
            timer.cancel()
        assert scheduler.pending() == 0
    finally:
        scheduler.stop()


def _start_and_stop(system: Any, name: str, ask: bool = False) -> weakref.ref[Any]:
    path = system.start_child("root/c", ChildSpec(name, Echo))
    if ask:
        assert system.ask(path, "hi", timeout=5.0).data == "hi"
    slot = system._tree.slots[path]
    threads = [h.thread for h in slot.live_hosts()]
    system.stop_child(path)
    for t in threads:
        t.join(10.0)
    return weakref.ref(slot)


def test_a_removed_child_is_freed_at_once():
    with start(Supervisor("root", children=[Supervisor("c")])) as system:
        ref = _start_and_stop(system, "a")
        _start_and_stop(system, "b")  # pykka keeps its last message: move the supervisor on
        gc.collect()
        assert ref() is None


def test_a_removed_child_that_handled_messages_is_freed_at_once():
    with start(Supervisor("root", children=[Supervisor("c")])) as system:
        ref = _start_and_stop(system, "a", ask=True)
        _start_and_stop(system, "b")
        gc.collect()
        assert ref() is None


def test_start_and_stop_cycles_keep_the_timer_heap_bounded():
    with start(Supervisor("root", children=[Supervisor("c")])) as system:
        for i in range(300):
            path = system.start_child("root/c", ChildSpec(f"conv-{i}", Echo))
            system.stop_child(path)
        assert system._runtime.scheduler.queued() <= 70
