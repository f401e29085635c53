"""Shared fixtures: every test must leave no thread behind, and logs stay quiet."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterator

import pytest
import structlog

# Threads that live for the whole process by design.
_PROCESS_WIDE = ("pytest_timeout", "MainThread")


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """A test that configures logging (the CLI does) must not leave it pointing at a stream
    that is closed once the test ends."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(autouse=True)
def no_process_leaks() -> Iterator[None]:
    """Worker processes (isolation="process") end with their system."""
    yield
    left = multiprocessing.active_children()  # also reaps those that have ended
    for child in left:
        child.join(timeout=5.0)
    still = [c.name for c in left if c.is_alive()]
    assert not still, f"processes leaked by this test: {still}"


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leftover = [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not t.name.startswith(_PROCESS_WIDE)
    ]
    for t in leftover:
        t.join(timeout=5.0)
    still = [t.name for t in leftover if t.is_alive()]
    assert not still, f"threads leaked by this test: {still}"
