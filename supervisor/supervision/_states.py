"""The states a supervisor actor keeps about itself and each child (plain values in health and
events: StrEnums)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Mode", "NodeState", "Phase", "SystemState", "Want"]


class Phase(StrEnum):
    """What a child is now."""

    DOWN = "down"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


class Want(StrEnum):
    """What a child should be."""

    RUN = "run"
    STOP = "stop"
    REMOVE = "remove"


class Mode(StrEnum):
    """What a supervisor incarnation is doing."""

    STARTING = "starting"
    RUNNING = "running"
    TERMINATING = "terminating"
    DEAD = "dead"


class NodeState(StrEnum):
    """What a supervisor path is, across its incarnations (shown in health)."""

    STARTING = "starting"
    RUNNING = "running"
    TERMINATING = "terminating"
    DOWN = "down"  # it gave up (escalated) and waits for its parent
    STOPPED = "stopped"
    FAILED = "failed"


class SystemState(StrEnum):
    """What a running tree (a System) is."""

    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"  # the root gave up; asks are answered by the fallbacks or refused
    STOPPING = "stopping"
    STOPPED = "stopped"
