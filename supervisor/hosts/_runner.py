"""AgentRunner: where one incarnation of an agent lives and how its calls run, the part of a
host that differs by `ChildSpec(isolation=...)`.

A host (_host_core.py) takes messages from its slot, arms their deadlines, shapes the
answers and reports to its supervisor; its runner builds the agent, runs one message at a
time, and ends it. A host is carried by a thread of its own (ThreadHost, for "thread",
"process" and "ray", whose runners pick where the agent lives) or by a task on a shared
event loop (TaskHost, for "task": _task_host.py).

- InThreadRunner ("thread"): the agent is an object on the host's own thread (and its event
  loop, for `async def handle`); a hung handler cannot be killed, only abandoned.
- ProcessRunner ("process", _process_runner.py): the agent lives in a worker process; a hung
  or oversized one is SIGKILLed.
- RayRunner ("ray", _ray_runner.py): the agent lives in a Ray actor, on any node of a Ray
  cluster; a hung one is ray.kill()ed. The same protocol as a worker process, over Ray calls.
- TaskRunner ("task", _task_host.py): the agent is an object whose `async def handle` runs
  on one of the system's shared loops; a hung handler is cancelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from actors import Agent, ExecutionResult, ExecutionStatus, FailureReason
from actors._states import StateTracker

from .._events import emit
from ..delivery._durable import decode_state, encode_state
from ._async import HostLoop
from ._context import HostContext
from ._outcome import describe

if TYPE_CHECKING:
    from .._spec import ChildSpec
    from ..delivery._durable import AgentDurability
    from ..delivery._envelope import Envelope
    from ._host import ThreadHost
    from ._host_core import HostCore

__all__ = [
    "AgentRunner",
    "InThreadRunner",
    "LocalRunner",
    "RunnerInfo",
    "build_agent",
    "make_runner",
    "validate_input",
]


class RunnerInfo(Protocol):
    """What health shows of a runner."""

    isolation: str

    @property
    def pid(self) -> int | None: ...

    @property
    def node_id(self) -> str | None:
        """The Ray node it runs on (Ray agents only)."""

    @property
    def actor_id(self) -> str | None:
        """Its Ray actor (Ray agents only)."""

    def rss_mb(self) -> float | None: ...


class AgentRunner(RunnerInfo, Protocol):
    def start(self) -> None:
        """Build the agent and run its on_start (on the host's thread); raises if either
        fails (a crash at start)."""

    def call(self, env: Envelope) -> Any:
        """Run one message to its outcome (input validation, handle(), awaiting it): what the
        handler returned, an INVALID_INPUT result, or raises (a crash)."""

    def cancel(self) -> None:
        """The running message overran its deadline (any thread): stop it if that can be
        done without ending the agent (an awaiting coroutine); else nothing."""

    def kill(self, reason: str) -> None:
        """Give up on this incarnation for good (any thread): end it now where that is
        possible (a process: SIGKILL); `reason` is deadline, memory, died or shutdown."""

    def stop(self) -> None:
        """Run the agent's on_stop (on the host's thread); raises what it raised."""

    def close(self) -> None:
        """Release what the runner holds (on the host's thread, as it ends); never raises."""

    def agent_state(self) -> str | None:
        """An LLMAgent's AgentState value, read without calling agent code; else None."""

    def state_to_save(self, durability: AgentDurability) -> bytes | None:
        """The agent's snapshot (ChildSpec(persist=True)) if it changed since the last one
        saved, else None (on the host's thread, after a message)."""


def build_agent(factory: Any, args: Any, kwargs: Any, path: str) -> Agent:
    agent = factory(*args, **dict(kwargs))
    if not isinstance(agent, Agent):
        msg = f"factory of {path} returned {type(agent).__name__}, not an Agent"
        raise TypeError(msg)
    return agent


def validate_input(agent: Agent, message: Any) -> tuple[Any, ExecutionResult | None]:
    """The message as the agent's input_model makes it, or the INVALID_INPUT answer."""
    model = agent.input_model
    if model is None:
        return message, None
    try:
        return model.model_validate(message), None
    except ValidationError as exc:
        return message, ExecutionResult(
            status=ExecutionStatus.INVALID_INPUT,
            error=f"{model.__name__}: {exc}",
            reason=FailureReason.INVALID_INPUT,
        )


def tracked_state(agent: object) -> str | None:
    """The runtime's own AgentState tracker of an LLMAgent, never its `state` attribute
    (user code: a property may block, raise SystemExit or return a secret)."""
    try:
        tracker = vars(agent).get("_states")
    except TypeError:  # no __dict__ (slots)
        return None
    return tracker.state.value if isinstance(tracker, StateTracker) else None


class LocalRunner:
    """An agent that is an object in this process (isolation "thread" and "task"): built,
    restored, snapshotted and stopped on what carries its host; how a call runs is the
    subclass's."""

    isolation = "thread"
    pid = None
    node_id = None
    actor_id = None

    def __init__(self, host: HostCore) -> None:
        self._host = host
        self.agent: Agent | None = None

    def start(self) -> None:
        slot = self._host.slot
        spec = slot.spec
        agent = build_agent(spec.factory, spec.args, spec.kwargs, slot.path)
        self.check(agent)
        durability = slot.durability
        if durability is not None and durability.persist:
            agent = restore_state(agent, durability, spec)
        agent.attach_context(HostContext(self._host))
        agent.on_start()
        self.agent = agent

    def check(self, agent: Agent) -> None:
        """Refuse an agent this runner cannot run (raises: a crash at start)."""

    def input_of(self, env: Envelope) -> tuple[Agent, Any, ExecutionResult | None]:
        """The running agent, env's message as its input_model makes it, and the
        INVALID_INPUT answer when the model refuses it (None: hand it to the handler)."""
        agent = self.agent
        assert agent is not None
        if agent.input_model is None:
            return agent, env.message, None
        message, refused = validate_input(agent, env.message)
        return agent, message, refused

    def state_to_save(self, durability: AgentDurability) -> bytes | None:
        """The agent's snapshot, if it changed since the last one saved; None otherwise, or
        when snapshot() failed (health and the log say why; the message is still answered)."""
        agent = self.agent
        if agent is None:
            return None
        try:
            state = encode_state(agent.snapshot())  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - the agent's bug: its state is not saved
            durability.state_error = f"snapshot() failed: {describe(exc)}"
            emit("snapshot_failed", level="error", path=durability.path,
                 agent_id=self._host.slot.id, reason=durability.state_error)  # fmt: skip
            return None
        return state if durability.changed(state) else None

    def kill(self, reason: str) -> None:
        """An object in this process cannot be killed: an abandoned handler runs on until
        it returns (or, on an event loop, until its cancellation reaches it)."""

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.on_stop()

    def agent_state(self) -> str | None:
        return tracked_state(self.agent) if self.agent is not None else None

    def rss_mb(self) -> float | None:
        return None


class InThreadRunner(LocalRunner):
    def __init__(self, host: ThreadHost) -> None:
        super().__init__(host)
        self._thread_host = host
        self._loop: HostLoop | None = None  # made when the agent first returns an awaitable

    def call(self, env: Envelope) -> Any:
        agent, message, refused = self.input_of(env)
        if refused is not None:
            return refused
        result = agent.handle(message)
        if hasattr(type(result), "__await__"):  # a coroutine (async def handle) or a future
            loop = self._loop
            if loop is None:
                loop = self._loop = HostLoop(self._host.slot.path)
            result = loop.run(result, self._thread_host.attach_async)
        return result

    def cancel(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.cancel()  # an async handler is cancelled when it next yields

    def close(self) -> None:
        self.agent = None
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.close()


def restore_state(agent: Agent, durability: AgentDurability, spec: ChildSpec) -> Agent:
    """`agent` with its persisted state restored (the snapshot handed to the store last, or
    the store's); a fresh instance, and a typed error in health and the log, if that state
    cannot be restored: a bad snapshot never becomes a crash loop."""
    data = durability.saved
    version = None
    try:
        if data is None:
            stored = durability.load()
            if stored is None:
                return agent
            data, version = stored.data, stored.version
        agent.restore(decode_state(data))  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - bad state, or a restore() that cannot take it
        which = f"snapshot v{version}" if version is not None else "the last snapshot"
        durability.state_error = f"{which} could not be restored: {describe(exc)}"
        durability.saved = None
        emit("snapshot_restore_failed", level="error", path=durability.path,
             agent_id=spec.id, reason=durability.state_error)  # fmt: skip
        return build_agent(spec.factory, spec.args, spec.kwargs, durability.path)
    durability.restored(data)
    return agent


def make_runner(host: ThreadHost) -> AgentRunner:
    """The runner of `host`'s kind (ChildSpec.isolation)."""
    isolation = host.slot.spec.isolation
    if isolation == "process":
        from ._process_runner import ProcessRunner  # noqa: PLC0415 - loaded when first used

        return ProcessRunner(host)
    if isolation == "ray":
        from ._ray_runner import RayRunner  # noqa: PLC0415 - Ray is an optional extra

        return RayRunner(host)
    return InThreadRunner(host)
