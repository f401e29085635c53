"""Shared fixtures: every test must leave no thread behind, and logs stay quiet."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

# Threads that live for the whole process by design.
_PROCESS_WIDE = ("pytest_timeout", "MainThread")


_ray: Any = None  # one local Ray for the whole session: it takes seconds to start
_ray_spares = contextlib.ExitStack()  # its warm actors, kept across the tests' systems
_RAY_SPARES = 3  # each Ray test finds its actors (and their replacements) warm


def _require_ray() -> Any:
    """Ray, initialised once (tests marked `ray`). Without Ray installed they are skipped,
    except where HIVEKEEPER_REQUIRE_RAY=1 (CI): there a missing Ray fails them."""
    global _ray  # noqa: PLW0603
    if _ray is not None:
        return _ray
    try:
        import ray
    except ImportError:
        if os.environ.get("HIVEKEEPER_REQUIRE_RAY") == "1":
            pytest.fail("Ray is required here (HIVEKEEPER_REQUIRE_RAY=1): pip install '.[ray]'")
        pytest.skip("Ray is not installed (pip install '.[ray]')")
    from supervisor import warm_ray_actors
    from supervisor.hosts._ray_session import local_init_options

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(**local_init_options(), log_to_driver=False)
    # a cold actor takes 5-15 s on a loaded machine: no test should wait for one
    _ray_spares.enter_context(warm_ray_actors(_RAY_SPARES))
    _ray = ray
    return ray


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Ray starts before a Ray test's fixtures: its own threads and processes live for the
    whole session, and are not this test's leaks."""
    if item.get_closest_marker("ray") is not None:
        _require_ray()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start Ray once, before any test's timeout runs: on a loaded machine ray.init takes
    many seconds, which are no test's own."""
    if any(item.get_closest_marker("ray") for item in session.items):
        try:
            import ray  # noqa: F401
        except ImportError:
            return  # each Ray test skips (or fails, in CI) on its own
        _require_ray()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _ray is not None:
        _ray_spares.close()
        _ray.shutdown()


@pytest.fixture
def ray_cluster() -> Any:
    """The session's Ray (for tests marked `ray`)."""
    return _require_ray()


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
