"""Reading an agent's health entry from what the runtime keeps, cheaply enough to do for 10,000
agents in one snapshot.

Two things make it cheap:
- An agent's entry is made from a *reading*: the fields that can change, as a tuple of plain
  values (timestamps as floats, dicts as tuples of items) taken from its slot, stats, breaker
  and runner, most of them by two attrgetters (in C). An agent whose slot is the one of the
  previous snapshot of its tree, with an equal reading, gets the previous entry back: an idle
  agent costs one reading and one comparison. The entry depends on nothing else but what its
  slot never changes (path, spec, fallbacks) and the recent latencies: those change only with
  `processed`, and before `last_heartbeat` is set (SlotStats.handled), both in the reading.
- Entries are built unvalidated (trusted): validating costs ~7 us an agent, pydantic's
  model_construct (its per-field loop runs in Python) ~12 us, trusted() ~1 us. So every value
  is built here with its field's type, and every string an agent can influence goes through
  clean_text by hand (what SafeText does when validating).
  tests/test_inspect_at_scale.py checks the entries against validated models.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from weakref import WeakKeyDictionary

from pydantic import BaseModel

from ._health_models import ActorHealth, BreakerHealth, RateLimitHealth, clean_text

if TYPE_CHECKING:
    from ..delivery._slot import AgentSlot
    from ..supervision._tree import TreeIndex

__all__ = ["READING_FIELDS", "Reading", "SnapshotPass", "agent_entry", "text", "trusted", "wall"]

_Model = TypeVar("_Model", bound=BaseModel)
Reading = tuple[tuple[Any, ...], ...]  # what an agent's entry shows (see agent_entry)

_FIELDS: dict[type[BaseModel], tuple[tuple[str, ...], set[str]]] = {}
_DEGRADED_STATES = frozenset({"backoff", "down", "failed", "stopped"})
_ACTOR_FIELDS = tuple(ActorHealth.model_fields)
_BREAKER_FIELDS = tuple(BreakerHealth.model_fields)
_RATE_FIELDS = tuple(RateLimitHealth.model_fields)


def trusted(cls: type[_Model], values: dict[str, Any]) -> _Model:
    """An instance of `cls` holding `values` as they are (what model_construct makes, without
    its per-field pass): every field must be given, in the model's order (the order they
    serialise in), already of its type. Every instance of a class shares one fields-set (all
    of them): pydantic copies it before changing it (model_copy), and these models are frozen."""
    known = _FIELDS.get(cls)
    if known is None:
        known = _FIELDS[cls] = (tuple(cls.model_fields), set(cls.model_fields))
    fields, fields_set = known
    if tuple(values) != fields:
        msg = f"{cls.__name__} needs the fields {fields} in this order, got {tuple(values)}"
        raise TypeError(msg)
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", values)
    object.__setattr__(model, "__pydantic_fields_set__", fields_set)
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


def text(value: str | None) -> str | None:
    return clean_text(value) if value is not None else None


def wall(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=UTC) if ts is not None else None


# An agent's reading: the fields of its entry that can change, as plain values, in this order
# (the ones a slot keeps read by one attrgetter, its stats' by another, the rest worked out).
_FROM_SLOT = (("state", "state"), ("alarm", "held_because"))  # state: a SlotState
_FROM_STATS = (
    ("restarts", "restarts"),
    ("last_error", "last_error"),
    ("started_at", "started_at"),  # wall-clock seconds
    ("processed", "processed"),
    ("last_heartbeat", "last_heartbeat"),  # wall-clock seconds
    ("abandoned", "abandoned_running"),
    ("abandoned_total", "abandoned_total"),
    ("fallback_answers", "fallback_answers"),
)
_read_slot = attrgetter(*[where for _, where in _FROM_SLOT])
_read_stats = attrgetter(*[where for _, where in _FROM_STATS])
_WORKED_OUT = (
    *("mailbox_depth", "busy", "failures", "kills", "dead_letters", "breaker", "rate_limit"),
    *("pid", "rss_mb", "node_id", "actor_id", "agent_state"),
)
_DURABILITY = (
    *("durable", "persist", "pending_durable", "redelivered", "duplicates"),
    *("last_snapshot_at", "state_error"),
)
READING_FIELDS = (
    *[f for f, _ in _FROM_SLOT],
    *[f for f, _ in _FROM_STATS],
    *_WORKED_OUT,
    *_DURABILITY,
)
_NO_RUNNER = (None, None, None, None, None)  # pid, rss_mb, node_id, actor_id, agent_state
_NO_DURABILITY = (False, False, None, 0, 0, None, None)

# the agent's previous reading and entry, and its slot (a weak reference: the fields a slot
# never changes, its path's and spec's, are read only when the slot at that path is new)
_Kept = tuple["weakref.ref[AgentSlot]", Reading, ActorHealth]


class SnapshotPass:
    """One snapshot of one tree: its clocks, read once, and what it keeps of each agent for
    the next one (`now`), with what the previous one kept (`before`). Kept per tree, dropped
    with it; never holds a runtime object (only weak references to the slots)."""

    _previous: ClassVar[WeakKeyDictionary[TreeIndex, dict[str, _Kept]]] = WeakKeyDictionary()

    def __init__(self, tree: TreeIndex) -> None:
        self.tree = tree
        self.dead_letters = tree.runtime.dead_letters
        self.mono = tree.runtime.clock.now()
        self.wall = time.time()
        self.before = self._previous.get(tree, {})
        self.now: dict[str, _Kept] = {}
        self._pending: dict[str, int] | None = None  # read once, if a durable agent asks

    def pending_counts(self) -> dict[str, int]:
        """Messages pending in the store, per durable agent (one query per snapshot)."""
        if self._pending is None:
            store = self.tree.runtime.store
            try:
                self._pending = store.pending_counts() if store is not None else {}
            except Exception:  # noqa: BLE001 - a closed or broken store: health still answers
                self._pending = {}
        return self._pending

    def finish(self) -> None:
        """Keep this snapshot's entries for the next one (only the agents it still has)."""
        self._previous[self.tree] = self.now


def agent_entry(slot: AgentSlot, at: SnapshotPass) -> ActorHealth:
    """The entry of one agent (or fallback): the previous snapshot's when it is the same slot
    and its reading has not changed."""
    stats = slot.stats
    host = slot.host
    failures, kills = stats.failures, stats.kills
    breaker, slot_rate = slot.breaker, slot.rate
    limiter = slot_rate.limiter if slot_rate is not None else None
    rate = slot_rate.health() if slot_rate is not None else None
    runner = host.runner if host is not None else None
    where: tuple[Any, ...]
    if runner is None:
        where = _NO_RUNNER
    elif runner.isolation in ("thread", "task"):  # in this process: no worker, node, actor
        where = (None, None, None, None, runner.agent_state())
    else:
        where = (runner.pid, runner.rss_mb(), runner.node_id, runner.actor_id, runner.agent_state())
    durability = slot.durability
    kept_state = (
        _NO_DURABILITY
        if durability is None
        else (
            durability.durable,
            durability.persist,
            at.pending_counts().get(slot.path, 0) if durability.durable else None,
            durability.redelivered,
            durability.duplicates,
            durability.last_snapshot_at,
            durability.state_error,
        )
    )
    reading = (  # READING_FIELDS, in five parts
        _read_slot(slot),
        _read_stats(stats),
        (
            len(slot.queue),
            host is not None and host.current is not None,
            tuple(failures.items()) if failures else (),
            tuple(kills.items()) if kills else (),
            at.dead_letters.count_for(slot.path),
            None
            if breaker is None
            else (
                breaker.state.value,
                breaker.failures,
                breaker.policy.fail_max,
                breaker.failures_total,
                breaker.opens_total,
                breaker.opened_at,  # monotonic
                breaker.reopens_in(at.mono),
            ),
            None
            if rate is None or limiter is None
            else (limiter.limit.per_second, limiter.limit.capacity, *rate),
        ),
        where,
        kept_state,
    )
    kept = at.before.get(slot.path)
    if kept is None or kept[0]() is not slot:
        kept = (weakref.ref(slot), reading, build_agent(slot, reading, at))
    elif kept[1] != reading:
        kept = (kept[0], reading, build_agent(slot, reading, at))
    at.now[slot.path] = kept
    return kept[2]


def percentiles(latencies: Iterable[float]) -> tuple[float | None, float | None]:
    """p50 and p99 of the recent handling times, in milliseconds (one sort for both)."""
    ordered = sorted(latencies)
    if not ordered:
        return None, None
    n = len(ordered)
    return ordered[min(n - 1, int(n * 0.5))] * 1000, ordered[min(n - 1, int(n * 0.99))] * 1000


def build_agent(slot: AgentSlot, reading: Reading, at: SnapshotPass) -> ActorHealth:
    """The entry a reading of `slot` shows, with the fields the slot never changes and the
    recent latencies (read after the reading)."""
    r = dict(zip(READING_FIELDS, (x for part in reading for x in part), strict=True))
    values = dict.fromkeys(_ACTOR_FIELDS)  # every field in its place, filled in below
    values.update(r)
    state: str = r["state"].value
    fallbacks = [clean_text(f.path) for f in slot.fallbacks]
    p50, p99 = percentiles(slot.stats.latencies)
    breaker: BreakerHealth | None = None
    if r["breaker"] is not None:
        b = dict(zip(_BREAKER_FIELDS, r["breaker"], strict=True))
        opened = b["opened_at"]
        b["opened_at"] = wall(at.wall - (at.mono - opened)) if opened is not None else None
        breaker = trusted(BreakerHealth, b)
    rate = r["rate_limit"]
    if rate is not None:
        rate = RateLimitHealth(**dict(zip(_RATE_FIELDS, rate, strict=True)))
    values.update(
        path=clean_text(slot.path),
        kind=slot.kind,
        state=state,
        supervisor=clean_text(slot.parent.path),
        mailbox_limit=slot.spec.mailbox_size,
        isolation=slot.spec.isolation,
        last_error=text(r["last_error"]),
        alarm=text(r["alarm"]),
        started_at=wall(r["started_at"]),
        last_heartbeat=wall(r["last_heartbeat"]),
        last_snapshot_at=wall(r["last_snapshot_at"]),
        state_error=text(r["state_error"]),
        failures={clean_text(kind): n for kind, n in r["failures"]},
        kills=dict(r["kills"]),
        fallbacks=fallbacks,
        breaker=breaker,
        rate_limit=rate,
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        degraded=bool(fallbacks)
        and (state in _DEGRADED_STATES or (breaker is not None and breaker.state != "closed")),
        # supervisors only
        children=[],
        strategy=None,
        budget_used=0,
        max_restarts=None,
        within_seconds=None,
        escalations=0,
    )
    return trusted(ActorHealth, values)
