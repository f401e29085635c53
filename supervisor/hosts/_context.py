"""HostContext: the AgentContext a host in this process (a thread or a task) gives its agent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors import ExecutionResult

from ._async import in_event_loop

if TYPE_CHECKING:
    from .._spec import ChildSpec, Supervisor
    from ._host_core import HostCore

__all__ = ["HostContext"]

_TREE_CHANGE_WAIT = 30.0  # seconds a start_child / stop_child waits when nothing bounds it
_LEAST_WAIT = 0.001  # a deadline already passed still lets the request be tried


class HostContext:
    def __init__(self, host: HostCore) -> None:
        self._host = host

    @property
    def path(self) -> str:
        return self._host.slot.path

    @property
    def agent_id(self) -> str:
        return self._host.slot.id

    @property
    def trace_id(self) -> str | None:
        env = self._host.current
        return env.trace_id if env is not None else None

    @property
    def fallback_reason(self) -> str | None:
        env = self._host.current
        return env.fallback_reason if env is not None and env.stage >= 0 else None

    def ask(
        self, path: str, message: Any, *, timeout: float | None = None, trace_id: str | None = None
    ) -> ExecutionResult:
        if in_event_loop():
            msg = (
                "self.context.ask() blocks, and this handler runs on an event loop: use "
                "`await self.context.ask_async(...)` in an async handler"
            )
            raise RuntimeError(msg)
        runtime = self._host.slot.runtime
        return runtime.ask(self._host.current, self.path, path, message, timeout, trace_id)

    async def ask_async(
        self, path: str, message: Any, *, timeout: float | None = None, trace_id: str | None = None
    ) -> ExecutionResult:
        runtime = self._host.slot.runtime
        return await runtime.ask_async(
            self._host.current, self.path, path, message, timeout, trace_id
        )

    def tell(self, path: str, message: Any, *, trace_id: str | None = None) -> None:
        runtime = self._host.slot.runtime
        runtime.tell(self._host.current, self.path, path, message, trace_id)

    def stop(self) -> None:
        self._host.stop_requested = True

    def heartbeat(self) -> None:
        self._host.heartbeat()

    @property
    def time_left(self) -> float | None:
        return self._host.time_left()

    @property
    def attempt(self) -> int:
        env = self._host.current
        return env.prior_attempts + env.attempts if env is not None else 0

    @property
    def redelivered(self) -> bool:
        return self.attempt > 1

    def mark_dirty(self) -> None:
        durability = self._host.slot.durability
        if durability is not None:
            durability.dirty = True

    def start_child(
        self, supervisor: str, spec: ChildSpec | Supervisor, *, timeout: float | None = None
    ) -> str:
        self._refuse_on_shared_loop("start_child")
        runtime = self._host.slot.runtime
        return runtime.start_child(supervisor, spec, timeout=self._wait_for(timeout))

    def stop_child(self, path: str, *, timeout: float | None = None) -> None:
        self._check_not_self(path)
        self._refuse_on_shared_loop("stop_child")
        runtime = self._host.slot.runtime
        runtime.stop_child(path, timeout=self._wait_for(timeout))

    async def start_child_async(
        self, supervisor: str, spec: ChildSpec | Supervisor, *, timeout: float | None = None
    ) -> str:
        wait = self._wait_for(timeout)
        runtime = self._host.slot.runtime
        return await runtime.start_child_async(supervisor, spec, timeout=wait)

    async def stop_child_async(self, path: str, *, timeout: float | None = None) -> None:
        self._check_not_self(path)
        wait = self._wait_for(timeout)
        await self._host.slot.runtime.stop_child_async(path, timeout=wait)

    def _refuse_on_shared_loop(self, what: str) -> None:
        """A task agent's loop is shared: a blocking wait there could wait for a start that
        needs that very loop."""
        if self._host.runner.isolation == "task" and in_event_loop():
            msg = (
                f"self.context.{what}() blocks, and this task agent shares its event loop: "
                f"use `await self.context.{what}_async(...)`"
            )
            raise RuntimeError(msg)

    def _check_not_self(self, path: str) -> None:
        own = self.path
        if path == own or own.startswith(f"{path}/"):
            msg = (
                f"stop_child({path!r}) from {own} would wait for this very handler to finish "
                "(it stops this agent or a supervisor of it): use self.context.stop() to stop "
                "this agent after the current message"
            )
            raise ValueError(msg)

    def _wait_for(self, timeout: float | None) -> float:
        """How long a tree change may block this handler: what the caller gave, else what is
        left of the message's deadline, at most 30 s."""
        if timeout is not None:
            return timeout
        left = self._host.time_left()
        if left is None:
            return _TREE_CHANGE_WAIT
        return min(max(left, _LEAST_WAIT), _TREE_CHANGE_WAIT)
