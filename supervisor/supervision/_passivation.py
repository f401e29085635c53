"""Passivation (ChildSpec(persist=True, passivate_after=seconds)): an agent idle that long
is stopped in order, its state already saved after its last message, and its slot left
PASSIVATED: messages queue, and the first one wakes it (its supervisor starts it again, the
state restored). One agent per conversation can then hold far more conversations than live
agents.

- watch(): armed when the agent has started; a timer (the scheduler's thread) checks its
  idleness and tells its supervisor Passivate, or looks again when it is next due.
- passivate() / wake(): the supervisor's decisions on those messages (its own thread), made
  on its ChildRecord: want=STOP with purpose "passivate", and back to want=RUN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._events import emit
from ..delivery._messages import Passivate
from ..delivery._slot import AgentSlot, SlotState
from ._states import Phase, Want

if TYPE_CHECKING:
    from ._child_record import ChildRecord

__all__ = ["idle", "passivate", "passivated", "wake", "watch"]


def watch(slot: AgentSlot, gen: int) -> None:
    """Check `slot`'s idleness when its passivate_after is next due (incarnation `gen`)."""
    after = slot.spec.passivate_after
    durability = slot.durability
    if after is None or durability is None:
        return
    runtime = slot.runtime
    now = runtime.clock.now()
    last = durability.last_active
    due = (last if last is not None and last <= now else now) + after
    if due <= now and not idle(slot, now):  # busy past it: look again a period on
        due = now + after

    def check() -> None:
        if slot.generation != gen or slot.state is not SlotState.RUNNING:
            return  # restarted, stopping or passivated since: a new watch is armed if needed
        if not idle(slot, runtime.clock.now()):
            watch(slot, gen)  # due again passivate_after after its last message
            return
        slot.parent.post(Passivate(slot, gen))

    runtime.scheduler.call_at(due, check)


def idle(slot: AgentSlot, now: float) -> bool:
    """Nothing queued or running, and no message for passivate_after seconds."""
    after, durability, host = slot.spec.passivate_after, slot.durability, slot.host
    if after is None or durability is None or host is None or host.current is not None:
        return False
    if slot.queue or slot.retrying:  # a retry waiting for its backoff is work too
        return False
    last = durability.last_active
    return last is None or now - last >= after


def passivate(rec: ChildRecord, slot: AgentSlot, gen: int, now: float) -> None:
    """Stop an idle agent until its next message (if it is still idle, and still that one)."""
    if rec.phase != Phase.RUNNING or rec.want != Want.RUN or rec.gen != gen:
        return
    if not idle(slot, now):  # a message came meanwhile: due again after it
        watch(slot, gen)
        return
    rec.passivating = True
    rec.want = Want.STOP
    emit("agent_passivating", path=slot.path, agent_id=slot.id, reason="idle",
         idle_for=slot.spec.passivate_after)  # fmt: skip


def wake(rec: ChildRecord, slot: AgentSlot) -> None:
    """A message came for a passivated (or passivating) agent: run it again."""
    if not rec.passivating or rec.want != Want.STOP:  # stop_child wins over a wake-up
        return
    rec.passivating = False
    rec.want = Want.RUN
    emit("agent_woken", path=slot.path, agent_id=slot.id, reason="message")


def passivated(rec: ChildRecord, slot: AgentSlot) -> None:
    """Down after a passivation: a message that came while it stopped wakes it at once."""
    with slot.lock:
        waiting = bool(slot.queue)
    emit("agent_passivated", path=slot.path, agent_id=slot.id, reason="idle")
    if waiting:
        wake(rec, slot)
