"""OpenTelemetry (optional extra `hivekeeper[otel]`): one span per message handled, parented
by the span that was current where the ask was made, so a request is one trace across agents.

Off unless start(tree, tracing=...) turns it on; then an ask captures the caller's context
into the envelope and the host opens the span around handle() and makes it current, so asks
made inside the handler become its children (async handlers included: asyncio copies the
context into the task).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .delivery._envelope import Envelope

__all__ = ["Tracing"]


class Tracing:
    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import context, trace  # noqa: PLC0415 - optional dependency
        except ImportError as exc:  # pragma: no cover - depends on the install
            msg = "tracing needs the otel extra: pip install 'hivekeeper[otel]'"
            raise RuntimeError(msg) from exc
        self._context = context
        self._trace = trace
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer("hivekeeper")

    def capture(self) -> Any:
        """The caller's current context, to parent the handling span."""
        return self._context.get_current()

    @contextmanager
    def span(self, env: Envelope, path: str) -> Iterator[Any]:
        attributes: dict[str, Any] = {
            "hivekeeper.path": path,
            "hivekeeper.trace_id": env.trace_id,
            "hivekeeper.message_id": env.msg_id,
            "hivekeeper.attempt": env.attempts,
            "hivekeeper.fallback": env.stage >= 0,
        }
        with self._tracer.start_as_current_span(
            f"hivekeeper.handle {path}", context=env.otel_context, attributes=attributes
        ) as span:
            yield span
