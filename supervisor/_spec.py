"""The tree declaration: ChildSpec and Supervisor, plain validated data checked before anything
starts (OTP's check_childspec)."""

from __future__ import annotations

import inspect
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from actors import Agent
from strategies import Backoff, BreakerPolicy, OneForOne, RateLimit, RestartStrategy, RestartType

__all__ = ["ChildSpec", "Isolation", "Overflow", "Supervisor", "iter_specs"]

Overflow = Literal["reject", "drop_oldest"]
Isolation = Literal["thread", "task", "process", "ray"]
MAX_SECONDS = 365 * 24 * 3600.0  # the longest timeout a declaration takes (finite: no inf/nan)
_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")


def _check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        msg = (
            f"invalid id {value!r}: use letters, digits and _ . : - "
            "('/' separates path segments and '#' marks fallbacks)"
        )
        raise ValueError(msg)
    return value


class ChildSpec(BaseModel):
    """One supervised agent.

    id: unique among its siblings; the agent's path is "<supervisor path>/<id>".
    factory: an Agent subclass (or a callable returning an Agent), called with args/kwargs on
      every (re)start.
    restart: permanent (always restarted), transient (only after an abnormal exit),
      temporary (never; removed when it exits).
    shutdown_timeout: seconds to finish the current message when stopped, before it is abandoned.
    start_timeout: seconds for __init__ + on_start() before the start counts as hung.
    message_timeout: seconds a handler may run on one message (None: no limit).
    breaker: a per-child circuit breaker (survives restarts).
    fallback: a RuleBasedAgent subclass, a ChildSpec, or a list of them (a chain); answers in
      the primary's place when it cannot.
    retries / backoff: re-deliver a message that crashed its handler up to `retries` times,
      waiting per `backoff`; then it is quarantined as a poison message.
    mailbox_size / overflow: bound the queue; "reject" refuses new messages, "drop_oldest"
      drops (and answers) the oldest queued one.
    rate_limit: at most so many messages a second (a RateLimit; the same object on several
      children is one shared budget). Over it a message waits in the mailbox while its
      deadline allows, else it is REJECTED (reason rate_limited) or goes to the fallback.
    max_abandoned: hung handlers (abandoned threads still running) this agent may have at
      once; past it the agent stays down, its fallback answering, until one of them ends
      (a thread cannot be killed: use process isolation for agents that hang for good).
    isolation: "thread" (the agent is an object on a thread of this process), "task" (an
      `async def handle` agent without a thread: a task on one of a few event loops the
      system's task agents share; cancelled at its deadline; 100,000 fit in one process),
      "process" (it is built and runs in a worker process, SIGKILLed on a deadline overrun;
      its factory, args, messages and results cross pickled, with cloudpickle) or "ray".
    memory_limit_mb: the most memory a process agent's worker may map (RLIMIT_AS); past it
      the message fails and the agent is restarted with reason memory.
    ray_options: with isolation="ray" (the agent is a Ray actor, on any node of the cluster),
      what Ray's `.options()` gets: num_cpus, num_gpus, memory, resources,
      scheduling_strategy, ... (never max_restarts: restarts are the supervisor's).
    persist: keep the agent's state in the system's store (start(tree, store=...)): the
      agent defines snapshot() -> dict (JSON-able, or a pydantic model) and restore(state);
      the snapshot is saved after every message that changed it and restored before
      on_start on every restart and on the next start of the same tree and store.
    durable: the agent's mailbox is in the store: a tell/ask returns (is accepted) only once
      the message is committed, and a message is deleted once handled; on start, messages
      not yet handled are delivered again first, in order (at least once).
    passivate_after: with persist=True, seconds without a message after which the agent is
      stopped (its state saved) until its next message starts it again with that state.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    id: str
    factory: Callable[..., Any]
    restart: RestartType = "permanent"
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = Field(default_factory=dict)
    shutdown_timeout: float = Field(default=5.0, gt=0.0, le=MAX_SECONDS)
    start_timeout: float | None = Field(default=30.0, gt=0.0, le=MAX_SECONDS)
    message_timeout: float | None = Field(default=30.0, gt=0.0, le=MAX_SECONDS)
    breaker: BreakerPolicy | None = None
    fallback: tuple[ChildSpec, ...] = ()
    retries: int = Field(default=0, ge=0)
    backoff: Backoff | None = None
    mailbox_size: int | None = Field(default=None, ge=1)
    overflow: Overflow = "reject"
    rate_limit: RateLimit | None = None
    max_abandoned: int = Field(default=3, ge=1)
    isolation: Isolation = "thread"
    memory_limit_mb: int | None = Field(default=None, ge=32)
    ray_options: Mapping[str, Any] | None = None
    persist: bool = False
    durable: bool = False
    passivate_after: float | None = Field(default=None, gt=0.0, le=MAX_SECONDS)

    def __init__(self, id: str, factory: Callable[..., Any] | None = None, /, **data: Any) -> None:
        if factory is not None:
            data["factory"] = factory
        super().__init__(id=id, **data)

    _v_id = field_validator("id")(_check_id)

    @field_validator("factory")
    @classmethod
    def _check_factory(cls, value: Callable[..., Any]) -> Callable[..., Any]:
        if isinstance(value, type) and not issubclass(value, Agent):
            msg = f"factory {value.__name__} is a class but not an actors.Agent subclass"
            raise ValueError(msg)
        return value

    @field_validator("fallback", mode="before")
    @classmethod
    def _normalise_fallback(cls, value: Any) -> Any:
        if value is None:
            return ()
        items = value if isinstance(value, (list, tuple)) else [value]
        out = []
        for item in items:
            if isinstance(item, type) and issubclass(item, Agent):
                out.append(ChildSpec(item.__name__, item))
            elif isinstance(item, ChildSpec):
                out.append(item)
            else:
                msg = f"fallback entries must be Agent subclasses or ChildSpecs, got {item!r}"
                raise ValueError(msg)
        return tuple(out)

    @model_validator(mode="after")
    def _check_isolation(self) -> ChildSpec:
        if self.ray_options is not None:
            _check_ray_options(self.id, self.isolation, self.ray_options)
        if self.memory_limit_mb is not None and self.isolation == "ray":
            msg = (
                f"memory_limit_mb is for isolation='process'; for a Ray agent ({self.id!r}) "
                "reserve memory with ray_options={'memory': bytes}"
            )
            raise ValueError(msg)
        if self.memory_limit_mb is not None and self.isolation != "process":
            msg = (
                f"memory_limit_mb needs isolation='process' (the OS enforces it on a worker "
                f"process; {self.id!r} runs on a thread of this process)"
            )
            raise ValueError(msg)
        factory = self.factory
        if (
            self.isolation == "task"
            and isinstance(factory, type)
            and issubclass(factory, Agent)
            and not inspect.iscoroutinefunction(factory.handle)
        ):
            msg = (
                f"isolation='task' needs `async def handle` ({factory.__name__}.handle is "
                "sync): task agents share an event loop, and a blocking handler would stall "
                "the others; use isolation='thread' for a sync handler"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _check_durability(self) -> ChildSpec:
        if self.persist and self.isolation not in ("thread", "task"):
            msg = (
                f"persist=True needs isolation='thread' or 'task' for now ({self.id!r} has "
                f"isolation={self.isolation!r}: its state lives in another process)"
            )
            raise ValueError(msg)
        factory = self.factory
        if self.persist and isinstance(factory, type):
            wanted = ("snapshot", "restore")
            missing = [m for m in wanted if not callable(getattr(factory, m, None))]
            if missing:
                msg = (
                    f"persist=True needs {factory.__name__} to define snapshot(self) -> dict "
                    f"and restore(self, state); it has no {' or '.join(missing)}()"
                )
                raise ValueError(msg)
        if self.passivate_after is not None and not self.persist:
            msg = (
                f"passivate_after needs persist=True ({self.id!r} would lose its state "
                "when passivated)"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _check_fallbacks(self) -> ChildSpec:
        ids = [f.id for f in self.fallback]
        if len(set(ids)) != len(ids):
            msg = f"duplicate fallback ids in {self.id!r}: {ids}"
            raise ValueError(msg)
        for f in self.fallback:
            if f.fallback:
                msg = f"fallback {f.id!r} has its own fallback; list the chain on the primary"
                raise ValueError(msg)
        return self


class Supervisor(BaseModel):
    """A supervisor node: a strategy (with its restart budget) over ordered children, which may
    be ChildSpecs or Supervisors. Children start in order and stop in reverse order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    strategy: RestartStrategy = Field(default_factory=OneForOne)
    children: tuple[ChildSpec | Supervisor, ...] = ()
    restart: RestartType = "permanent"
    shutdown_timeout: float | None = Field(default=None, gt=0.0, le=MAX_SECONDS)

    def __init__(self, id: str, /, **data: Any) -> None:
        super().__init__(id=id, **data)

    _v_id = field_validator("id")(_check_id)

    @field_validator("strategy", mode="before")
    @classmethod
    def _check_strategy(cls, value: Any) -> Any:
        if not isinstance(value, RestartStrategy) or type(value) is RestartStrategy:
            msg = (
                f"strategy must be OneForOne(...), OneForAll(...) or RestForOne(...), got {value!r}"
            )
            raise ValueError(msg)
        return value

    @field_validator("children", mode="before")
    @classmethod
    def _check_children(cls, value: Any) -> Any:
        items = list(value) if isinstance(value, (list, tuple)) else value
        if isinstance(items, list):
            for item in items:
                if not isinstance(item, (ChildSpec, Supervisor)):
                    msg = f"children must be ChildSpec or Supervisor, got {item!r}"
                    raise ValueError(msg)
            counts = Counter(c.id for c in items)
            dupes = sorted(i for i, n in counts.items() if n > 1)
            if dupes:
                msg = f"duplicate child ids {dupes}: ids must be unique among siblings"
                raise ValueError(msg)
        return value


def iter_specs(
    spec: ChildSpec | Supervisor, parent: str = ""
) -> Iterator[tuple[str, ChildSpec | Supervisor]]:
    """(path, spec) for every node of a tree, depth first, in declaration order."""
    path = f"{parent}/{spec.id}" if parent else spec.id
    yield path, spec
    if isinstance(spec, Supervisor):
        for child in spec.children:
            yield from iter_specs(child, path)


Supervisor.model_rebuild()
ChildSpec.model_rebuild()


_RAY_OWNED = frozenset(
    {
        "max_restarts",  # restarts are the supervisor's
        "max_task_retries",
        "lifetime",  # a detached actor would outlive its system
        "name",
        "namespace",
        "max_concurrency",  # the actor's protocol needs its own threads
        "concurrency_groups",
    }
)


def _check_ray_options(child: str, isolation: str, options: Mapping[str, Any]) -> None:
    if isolation != "ray":
        msg = f"ray_options needs isolation='ray' ({child!r} has isolation={isolation!r})"
        raise ValueError(msg)
    bad = sorted(str(k) for k in options if not isinstance(k, str) or k in _RAY_OWNED)
    if bad:
        msg = (
            f"ray_options of {child!r} may not set {', '.join(bad)}: restarts, names, "
            "lifetimes and concurrency of its actors are the supervisor's"
        )
        raise ValueError(msg)
