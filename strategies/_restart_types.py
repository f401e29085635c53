"""Restart types and exit kinds: the OTP table that says whether a stopped child comes back."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

__all__ = ["ExitKind", "RestartType", "should_restart"]

RestartType = Literal["permanent", "transient", "temporary"]
"""permanent: always restarted; transient: only after an abnormal exit; temporary: never."""


class ExitKind(StrEnum):
    """Why a child stopped. Only NORMAL and SHUTDOWN are normal exits."""

    NORMAL = "normal"  # the agent asked to stop (context.stop())
    SHUTDOWN = "shutdown"  # its supervisor stopped it
    CRASH = "crash"  # an exception escaped handle() or a hook
    HANG = "hang"  # a handler overran its message deadline and was abandoned
    ESCALATED = "escalated"  # a child supervisor exhausted its restart budget

    @property
    def abnormal(self) -> bool:
        return self not in (ExitKind.NORMAL, ExitKind.SHUTDOWN)


def should_restart(restart: RestartType, exit_kind: ExitKind) -> bool:
    """The restart-type x exit-reason dispatch table of OTP's supervisor."""
    if restart == "permanent":
        return exit_kind is not ExitKind.SHUTDOWN
    if restart == "transient":
        return exit_kind.abnormal
    return False
