"""The steps of `hivekeeper run` around the tree: checking --http before the tree starts,
serving it, the --on-start hook, the live view and the ordered stop."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from ._cli_errors import CliError
from ._cli_view import render_tree

if TYPE_CHECKING:
    from ..system._system import System
    from ._http import HealthServer

__all__ = ["call_hook", "check_http", "serve", "stop", "watch"]


def check_http(host: str, port: int, token: str | None) -> None:
    """CliError unless --http can serve on (host, port): the token rules, and a free port."""
    from ._http import check_bind  # noqa: PLC0415

    try:
        check_bind(host, token)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    bare = host.strip("[]")
    probe = socket.socket(socket.AF_INET6 if ":" in bare else socket.AF_INET)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        probe.bind((bare, port))
    except OSError as exc:
        raise CliError(f"--http: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    finally:
        probe.close()


def serve(
    system: System, host: str, port: int, token: str | None, allowed: list[str] | None
) -> HealthServer:
    try:
        return system.serve_http(host=host, port=port, token=token, allowed_hosts=allowed or None)
    except (OSError, ValueError) as exc:  # the port was taken since check_http
        raise CliError(f"--http: cannot listen on {host}:{port}: {exc}") from exc


def call_hook(hook: Callable[[System], object], target: str, system: System) -> None:
    try:
        hook(system)
    except Exception as exc:
        raise CliError(f"--on-start {target} failed: {type(exc).__name__}: {exc}") from exc


def stop(system: System, server: HealthServer | None) -> None:
    try:
        system.shutdown()
    finally:
        if server is not None:
            server.close()


def watch(
    system: System,
    console: Console,
    refresh: float,
    duration: float | None,
    stop: threading.Event | None = None,
) -> None:
    """The live view until `duration` passes (forever without one) or `stop` is set."""
    from rich.live import Live  # noqa: PLC0415

    last: dict[str, tuple[float, int]] = {}
    stop_at = time.monotonic() + duration if duration is not None else None
    wake = stop if stop is not None else threading.Event()
    with Live(console=console, refresh_per_second=max(1.0, 1 / refresh), transient=False) as live:
        while (stop_at is None or time.monotonic() < stop_at) and not wake.is_set():
            try:
                health = system.health()
                now = time.monotonic()
                rates = {}
                for path, actor in health.actors.items():
                    seen = last.get(path)
                    if seen is not None and now > seen[0]:
                        rates[path] = (actor.processed - seen[1]) / (now - seen[0])
                    last[path] = (now, actor.processed)
                live.update(render_tree(health.tree(), rates))
            except Exception as exc:  # noqa: BLE001 - the view must outlive a bad snapshot
                live.update(Text(f"health unavailable: {type(exc).__name__}", style="red"))
            wake.wait(refresh)
