"""Exceptions for caller mistakes. Anything an agent does is reported in an ExecutionResult."""

from __future__ import annotations

__all__ = [
    "ChildStartError",
    "DuplicateChildError",
    "HivekeeperError",
    "NotAChildError",
    "SupervisorUnavailableError",
    "SystemNotRunningError",
    "TreeStartError",
    "UnknownPathError",
]


class HivekeeperError(Exception):
    """Base of every exception hivekeeper raises to callers. Each one pickles with its
    message and attributes (an agent in a worker process gets the parent's errors as they
    are), whatever its constructor takes."""

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


class UnknownPathError(HivekeeperError, LookupError):
    """No agent or supervisor at this path (never declared, removed, or a typo)."""

    def __init__(
        self, path: str, known: list[str] | None = None, *, detail: str | None = None
    ) -> None:
        self.path = path
        if detail is not None:
            super().__init__(detail)
            return
        hint = ""
        if known:
            close = [k for k in known if k.rsplit("/", 1)[-1] == path.rsplit("/", 1)[-1]]
            hint = f"; did you mean {close[0]!r}?" if close else f"; known paths: {known[:8]}"
        super().__init__(f"no actor at path {path!r}{hint}")


class SystemNotRunningError(HivekeeperError, RuntimeError):
    """The system was shut down (or never started)."""


class TreeStartError(HivekeeperError, RuntimeError):
    """The tree could not be started (its root exhausted its restart budget while starting)."""


class SupervisorUnavailableError(HivekeeperError, RuntimeError):
    """start_child / stop_child on a supervisor that is not running (it gave up and is waiting
    for its parent, the tree failed, it is shutting down), or that did not answer in time."""


class DuplicateChildError(HivekeeperError, ValueError):
    """start_child with an id its supervisor already has a child for (perhaps started by a
    concurrent start_child)."""

    def __init__(self, supervisor: str, child: str) -> None:
        self.supervisor = supervisor
        self.child = child
        super().__init__(f"{supervisor} already has a child {child!r}")


class NotAChildError(HivekeeperError, ValueError):
    """stop_child on a path that no supervisor of the tree owns (the root, a fallback)."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} is not a child of a supervisor in this tree")


class ChildStartError(HivekeeperError, RuntimeError):
    """start_child: the child did not start, and was discarded (never restarted, not kept):
    its __init__ / on_start raised or overran its start_timeout, a child supervisor gave up
    while starting, or a concurrent stop_child removed it first. path: where it would have
    been; child: its id; cause: why (the exception text for a crash)."""

    def __init__(self, path: str, cause: str) -> None:
        self.path = path
        self.child = path.rsplit("/", 1)[-1]
        self.cause = cause
        super().__init__(f"could not start {path}: {cause}")


def _rebuild(cls: type[HivekeeperError], message: str, state: dict[str, object]) -> HivekeeperError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error
