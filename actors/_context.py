"""The interface through which an agent reaches the rest of the system.

Its host (a thread actor today; a worker process or Ray later) provides it; agents depend on
this protocol only, never on the runtime.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._result import ExecutionResult

__all__ = ["AgentContext"]


class AgentContext(Protocol):
    @property
    def path(self) -> str:
        """This agent's path in the tree, e.g. "root/team/a"."""

    @property
    def agent_id(self) -> str:
        """The child id (last path segment)."""

    @property
    def trace_id(self) -> str | None:
        """Trace id of the message being handled (None outside a handler)."""

    @property
    def fallback_reason(self) -> str | None:
        """When this agent answers as a fallback: why the primary could not."""

    def ask(
        self, path: str, message: Any, *, timeout: float | None = None, trace_id: str | None = None
    ) -> ExecutionResult:
        """Ask another agent; same semantics as System.ask. The default timeout is what is left
        of the current message's deadline; the default trace is the current message's (pass
        trace_id to start a new request, e.g. in an agent that generates traffic). An ask that
        would wait on itself (a cycle) ends at once with TIMEOUT."""

    async def ask_async(
        self, path: str, message: Any, *, timeout: float | None = None, trace_id: str | None = None
    ) -> ExecutionResult:
        """ask() for `async def handle`: awaits the answer without blocking the event loop
        that all async agents share (a blocking ask() there raises RuntimeError)."""

    def tell(self, path: str, message: Any, *, trace_id: str | None = None) -> None:
        """Send without waiting for an answer (same trace as the current message unless
        trace_id is given)."""

    def stop(self) -> None:
        """Ask to stop normally after the current message (a transient child is not restarted)."""

    def heartbeat(self) -> None:
        """The handler is making progress (e.g. streaming tokens): push this message's handler
        deadline to now + message_timeout. The caller's ask timeout still bounds its wait."""

    @property
    def time_left(self) -> float | None:
        """Seconds left before the current message's nearer deadline (the handler's
        message_timeout or the caller's ask timeout); None without one or outside a handler.
        Pass it down to slow calls (an LLM request) so they give up in time."""

    @property
    def attempt(self) -> int:
        """Which delivery of the current message this is: 1 the first time; more after a
        crash of its handler (a retry) or, for a durable mailbox, of the whole process (0
        outside a handler)."""

    @property
    def redelivered(self) -> bool:
        """The current message was delivered before (attempt > 1): it may have been handled
        already, in part or whole; make its effects idempotent."""

    def mark_dirty(self) -> None:
        """With ChildSpec(persist=True): save the snapshot after this message even if it
        compares equal to the last saved one (e.g. state changed in place where snapshot()
        cannot see it). Harmless otherwise."""

    def start_child(self, supervisor: str, spec: Any, *, timeout: float | None = None) -> str:
        """Add a child (a ChildSpec or Supervisor) under the running supervisor at path
        `supervisor` and wait until it has started; returns its path (e.g. one agent per
        conversation). Raises the same typed errors as System.start_child. The wait is bounded
        by `timeout`, else by what is left of the current message's deadline (at most 30 s)."""

    def stop_child(self, path: str, *, timeout: float | None = None) -> None:
        """Stop and remove the child at `path` (it finishes its current message); same
        errors and wait as start_child."""

    async def start_child_async(
        self, supervisor: str, spec: Any, *, timeout: float | None = None
    ) -> str:
        """start_child() for `async def handle`: waits without blocking the event loop (a
        task agent, isolation="task", must use this one: its loop is shared)."""

    async def stop_child_async(self, path: str, *, timeout: float | None = None) -> None:
        """stop_child() for `async def handle`, like start_child_async."""
