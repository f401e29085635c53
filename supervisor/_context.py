"""HostContext: the AgentContext a thread host gives its agent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors import ExecutionResult

from ._async import SharedLoop

if TYPE_CHECKING:
    from ._host import ThreadHost

__all__ = ["HostContext"]


class HostContext:
    def __init__(self, host: ThreadHost) -> None:
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
        if SharedLoop.is_loop_thread():
            msg = (
                "self.context.ask() blocks, and this handler runs on the event loop every async "
                "agent shares: use `await self.context.ask_async(...)` in an async handler"
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
