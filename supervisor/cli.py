"""The `hivekeeper` command: run a tree with a live view, inspect a running one, the demo.

    hivekeeper demo                      the support-desk demo (offline, no key needed)
    hivekeeper run MODULE:TREE           start a tree declared in code, live view until Ctrl-C
    hivekeeper check MODULE:TREE         validate a tree declaration without starting it
    hivekeeper status URL / tree URL     read a running system's HTTP endpoint

Bad arguments and bad trees get a one-line error and exit code 2, never a traceback.
status/tree exit 0 when the tree is healthy, 1 when it is degraded or failed, 2 when the
endpoint cannot be read.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console

from ._cli_view import render_tree, status_table
from ._spec import ChildSpec, Supervisor, iter_specs

__all__ = ["app", "load_tree", "main"]

app = typer.Typer(
    name="hivekeeper",
    help="Erlang/OTP-grade supervision for LLM agents.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def load_tree(target: str) -> Supervisor:
    """MODULE:ATTR -> the Supervisor it names (or that a zero-argument callable returns)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        msg = f"expected MODULE:TREE (e.g. examples.support_desk:tree), got {target!r}"
        raise CliError(msg)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ValidationError as exc:
        raise CliError(f"{module_name}: invalid tree declaration: {_first_error(exc)}") from exc
    except ImportError as exc:
        raise CliError(f"cannot import {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise CliError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    try:
        value = getattr(module, attr)
    except AttributeError as exc:
        raise CliError(f"{module_name} has no attribute {attr!r}") from exc
    if callable(value) and not isinstance(value, Supervisor):
        try:
            value = value()
        except ValidationError as exc:
            raise CliError(f"{target}: invalid tree declaration: {_first_error(exc)}") from exc
    if not isinstance(value, Supervisor):
        raise CliError(f"{target} is a {type(value).__name__}, not a supervisor.Supervisor tree")
    return value


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _fetch(url: str, route: str, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(url.rstrip("/") + route, headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code == 401:
        raise CliError(f"{url}: 401 unauthorized (give --token)")
    try:
        return response.status_code, response.json()
    except ValueError as exc:
        raise CliError(f"{url}{route} did not answer JSON (HTTP {response.status_code})") from exc


@app.command()
def status(
    url: Annotated[
        str, typer.Argument(help="Base URL of a running system, e.g. http://127.0.0.1:8321")
    ],
    token: Annotated[
        str | None, typer.Option(envvar="HIVEKEEPER_TOKEN", help="Bearer token")
    ] = None,
) -> None:
    """Print a running system's health; exit 0 healthy, 1 unhealthy, 2 unreachable."""
    _, health = _fetch(url, "/health", token)
    console.print(status_table(health))
    raise typer.Exit(0 if health.get("healthy") else 1)


@app.command()
def tree(
    url: Annotated[str, typer.Argument(help="Base URL of a running system")],
    token: Annotated[
        str | None, typer.Option(envvar="HIVEKEEPER_TOKEN", help="Bearer token")
    ] = None,
) -> None:
    """Print a running system's supervision tree; exit 0 healthy, 1 unhealthy, 2 unreachable."""
    _, snapshot = _fetch(url, "/tree", token)
    console.print(render_tree(snapshot))
    raise typer.Exit(0 if snapshot.get("healthy") else 1)


@app.command()
def check(target: Annotated[str, typer.Argument(help="MODULE:TREE")]) -> None:
    """Validate a tree declaration without starting anything."""
    spec = load_tree(target)
    agents = supervisors = fallbacks = 0
    for path, node in iter_specs(spec):
        if isinstance(node, Supervisor):
            supervisors += 1
            strategy = node.strategy
            console.print(
                f"{path}  [dim]supervisor {strategy.name} "
                f"max_restarts={strategy.max_restarts} within={strategy.within_seconds}s[/]"
            )
        elif isinstance(node, ChildSpec):
            agents += 1
            fallbacks += len(node.fallback)
            extras = [f"restart={node.restart}", f"message_timeout={node.message_timeout}"]
            if node.breaker:
                extras.append(f"breaker(fail_max={node.breaker.fail_max})")
            if node.fallback:
                extras.append("fallback=" + ">".join(f.id for f in node.fallback))
            factory = getattr(node.factory, "__name__", node.factory)
            console.print(f"{path}  [dim]{factory} {' '.join(extras)}[/]")
    console.print(
        f"[green]ok[/]: {supervisors} supervisors, {agents} agents, {fallbacks} fallbacks"
    )


@app.command()
def run(
    target: Annotated[
        str, typer.Argument(help="MODULE:TREE, a supervisor.Supervisor declared in code")
    ],
    json_logs: Annotated[
        bool, typer.Option("--json-logs", help="Log JSON lines to stderr")
    ] = False,
    log_level: Annotated[
        str,
        typer.Option(
            help="Lowest level logged to stderr (default: info with --json-logs, else error, "
            "so the live view stays readable)"
        ),
    ] = "",
    http: Annotated[int | None, typer.Option("--http", help="Serve health on this port")] = None,
    host: Annotated[str, typer.Option(help="Bind address for --http")] = "127.0.0.1",
    token: Annotated[
        str | None, typer.Option(envvar="HIVEKEEPER_TOKEN", help="Bearer token for --http")
    ] = None,
    refresh: Annotated[float, typer.Option(min=0.05, help="Seconds between view refreshes")] = 0.5,
    duration: Annotated[
        float | None, typer.Option("--for", min=0.0, help="Stop after this many seconds")
    ] = None,
) -> None:
    """Start a tree and show it live (state, restarts, breaker, mailbox, throughput) until
    Ctrl-C; then shut it down in order and print a summary."""
    from rich.live import Live  # noqa: PLC0415

    from ._logging import configure_logging  # noqa: PLC0415
    from ._system import start  # noqa: PLC0415

    spec = load_tree(target)
    level = log_level or ("info" if json_logs else "error")
    if level.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise CliError(
            f"--log-level must be debug, info, warning, error or critical, not {level!r}"
        )
    configure_logging(json=json_logs, level=level)
    system = start(spec)
    server = system.serve_http(host=host, port=http, token=token) if http is not None else None
    console.print(
        f"started {spec.id} with {len(system.paths())} agents"
        + (f"; health at {server.url}" if server else "")
        + "; Ctrl-C to stop",
        highlight=False,
    )
    sys.stdout.flush()
    last: dict[str, tuple[float, int]] = {}
    stop_at = time.monotonic() + duration if duration is not None else None
    wake = threading.Event()
    try:
        with Live(
            console=console, refresh_per_second=max(1.0, 1 / refresh), transient=False
        ) as live:
            while stop_at is None or time.monotonic() < stop_at:
                health = system.health()
                now = time.monotonic()
                rates = {}
                for path, actor in health.actors.items():
                    seen = last.get(path)
                    if seen is not None and now > seen[0]:
                        rates[path] = (actor.processed - seen[1]) / (now - seen[0])
                    last[path] = (now, actor.processed)
                live.update(render_tree(health.tree(), rates))
                wake.wait(refresh)
    except KeyboardInterrupt:
        pass
    console.print("\nstopping: children in reverse order ...")
    health = system.health()
    system.shutdown()
    console.print(status_table(health.model_dump(mode="json")))
    console.print(f"stopped {spec.id}; dead letters: {health.dead_letters or 'none'}")


@app.command()
def demo(
    tickets: Annotated[int, typer.Option(min=1, help="How many tickets to stream")] = 120,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Tickets in flight at once")] = 6,
    seed: Annotated[int, typer.Option(help="Seed for tickets and injected faults")] = 7,
    rate: Annotated[float, typer.Option(min=0.1, help="Tickets arriving per second")] = 15.0,
    online: Annotated[
        bool | None,
        typer.Option("--online/--offline", help="Use OPENAI_BASE_URL (default: if it is set)"),
    ] = None,
    http: Annotated[
        int | None, typer.Option("--http", help="Also serve the tree page on this port")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="An OpenAI-compatible endpoint (implies --online)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name for --online")] = None,
) -> None:
    """The support-desk demo: tickets through LLM agents that fail in every way the seed
    article lists, while breakers, deadlines and rule-based fallbacks keep answering."""
    import logging  # noqa: PLC0415

    import structlog  # noqa: PLC0415

    # the demo ships as the hivekeeper_examples package (the repository's examples/ folder)
    run_demo = importlib.import_module("hivekeeper_examples.demo").run_demo
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    if base_url:  # read by OpenAICompatibleLLM; the key stays in OPENAI_API_KEY
        os.environ["OPENAI_BASE_URL"] = base_url
        online = True
    if model:
        os.environ["OPENAI_MODEL"] = model
    run_demo(
        tickets=tickets,
        concurrency=concurrency,
        seed=seed,
        rate=rate,
        online=online,
        console=console,
        http_port=http,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors, exit codes 0 / 1 (unhealthy) / 2 (error).

    Typer's usage errors, Exit and Abort are recognised by their interface (exit_code,
    format_message), not imported: typer vendors its click in some releases and not others."""
    try:
        result = app(args=argv, standalone_mode=False)
    except CliError as exc:
        errors.print(f"error: {exc}", highlight=False, soft_wrap=True)
        return 2
    except ValidationError as exc:
        errors.print(f"error: invalid input: {_first_error(exc)}", highlight=False, soft_wrap=True)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        errors.print("aborted")
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - anything else: one line, never a traceback
        code = getattr(exc, "exit_code", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            return 0
        if isinstance(code, int) and hasattr(exc, "format_message"):
            errors.print(f"error: {exc.format_message()}", highlight=False, soft_wrap=True)
            return code
        if type(exc).__name__ == "Exit" and isinstance(code, int):
            return code
        errors.print(f"error: {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True)
        return 2
    return result if isinstance(result, int) else 0


def run_main() -> None:
    """Console-script entry point."""
    sys.exit(main())
