"""The `hivekeeper` command: run a tree with a live view, inspect a running one, the demo.

    hivekeeper demo                      the support-desk demo (offline, no key needed)
    hivekeeper run MODULE:TREE           start a tree declared in code, live view until Ctrl-C
    hivekeeper check MODULE:TREE         validate a tree declaration without starting it
    hivekeeper status URL / tree URL     read a running system's HTTP endpoint

Bad arguments and bad trees get a one-line error and exit code 2, never a traceback.
status/tree take the endpoint's base URL (a URL ending in /health, /tree or /metrics is
read as its base) and exit 0 when the tree is healthy, 1 when it is degraded, failed or
stopped (HTTP 200 or 503 with a health document), 2 when the endpoint cannot be read: not
reachable, 401, any other HTTP status, or an answer that is not a hivekeeper health document.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from ._spec import ChildSpec, Supervisor, iter_specs
from .inspect._cli_errors import CliError
from .inspect._cli_remote import exit_code, fetch
from .inspect._cli_run import call_hook, check_http, serve, stop, watch
from .inspect._cli_view import render_tree, status_table

if TYPE_CHECKING:
    from .inspect._http import HealthServer
    from .system._system import System

__all__ = ["CliError", "app", "load_hook", "load_tree", "main"]

app = typer.Typer(
    name="hivekeeper",
    help="Erlang/OTP-grade supervision for LLM agents.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


def _import_attr(target: str, what: str, example: str) -> tuple[str, Any]:
    """MODULE:ATTR -> (module name, the attribute), CliError with one line otherwise."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        msg = f"expected MODULE:{what} (e.g. {example}), got {target!r}"
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
        return module_name, getattr(module, attr)
    except AttributeError as exc:
        raise CliError(f"{module_name} has no attribute {attr!r}") from exc


def load_tree(target: str) -> Supervisor:
    """MODULE:ATTR -> the Supervisor it names (or that a zero-argument callable returns)."""
    _, value = _import_attr(target, "TREE", "hivekeeper_examples.support_desk:tree")
    if callable(value) and not isinstance(value, Supervisor):
        try:
            value = value()
        except ValidationError as exc:
            raise CliError(f"{target}: invalid tree declaration: {_first_error(exc)}") from exc
    if not isinstance(value, Supervisor):
        raise CliError(f"{target} is a {type(value).__name__}, not a supervisor.Supervisor tree")
    return value


def load_hook(target: str) -> Callable[[System], object]:
    """MODULE:FUNC -> the callable that `run --on-start` hands the running System."""
    _, value = _import_attr(target, "FUNC", "myapp.main:on_started")
    if not callable(value):
        raise CliError(f"--on-start {target} is a {type(value).__name__}, not a function")
    hook: Callable[[System], object] = value
    return hook


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


@app.command()
def status(
    url: Annotated[
        str, typer.Argument(help="Base URL of a running system, e.g. http://127.0.0.1:8321")
    ],
    token: Annotated[
        str | None, typer.Option(envvar="HIVEKEEPER_TOKEN", help="Bearer token")
    ] = None,
) -> None:
    """Print a running system's health; exit 0 healthy, 1 unhealthy (degraded, failed,
    stopped), 2 unreadable (unreachable, 401, another HTTP status, not a health document)."""
    code, health = fetch(url, "/health", "actors", token)
    console.print(status_table(health))
    _note_status(code, health)
    raise typer.Exit(exit_code(code, health))


@app.command()
def tree(
    url: Annotated[str, typer.Argument(help="Base URL of a running system")],
    token: Annotated[
        str | None, typer.Option(envvar="HIVEKEEPER_TOKEN", help="Bearer token")
    ] = None,
) -> None:
    """Print a running system's supervision tree; exit codes as for status."""
    code, snapshot = fetch(url, "/tree", "tree", token)
    console.print(render_tree(snapshot))
    _note_status(code, snapshot)
    raise typer.Exit(exit_code(code, snapshot))


def _note_status(code: int, doc: dict[str, Any]) -> None:
    if code != 200:
        _error(f"HTTP {code}: the tree is {doc.get('state')}")


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
                f"{escape(path)}  [dim]supervisor {escape(strategy.name)} "
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
            factory = str(getattr(node.factory, "__name__", node.factory))
            console.print(f"{escape(path)}  [dim]{escape(factory)} {escape(' '.join(extras))}[/]")
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
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="A Host header --http answers (repeatable; default: loopback names and the "
            "bind address; '*' for any)",
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="HIVEKEEPER_TOKEN", help="Bearer token for --http")
    ] = None,
    on_start: Annotated[
        str | None,
        typer.Option(
            "--on-start",
            metavar="MODULE:FUNC",
            help="Call FUNC(system) with the running System once the tree (and --http) is up, "
            "before the live view starts: e.g. to start one agent per conversation with "
            "system.start_child. It should return promptly (start your own threads for "
            "ongoing work); if it raises, the tree is shut down and the command exits 2",
        ),
    ] = None,
    refresh: Annotated[float, typer.Option(min=0.05, help="Seconds between view refreshes")] = 0.5,
    duration: Annotated[
        float | None, typer.Option("--for", min=0.0, help="Stop after this many seconds")
    ] = None,
) -> None:
    """Start a tree and show it live (state, restarts, breaker, mailbox, throughput) until
    Ctrl-C; then shut it down in order and print a summary. With --on-start MODULE:FUNC,
    FUNC(system) gets the running System first."""
    from .inspect._logging import configure_logging  # noqa: PLC0415
    from .system._start import start  # noqa: PLC0415

    spec = load_tree(target)
    hook = load_hook(on_start) if on_start else None
    level = log_level or ("info" if json_logs else "error")
    if level.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise CliError(
            f"--log-level must be debug, info, warning, error or critical, not {level!r}"
        )
    if http is not None:  # before the tree starts: a bad bind must not leave it running
        check_http(host, http, token)
    configure_logging(json=json_logs, level=level)
    try:
        system = start(spec)
    except KeyboardInterrupt:  # start() already stopped what had started, in order
        errors.print(f"interrupted while starting {spec.id}: stopped", markup=False)
        raise typer.Exit(130) from None
    server: HealthServer | None = None
    # from here on, Ctrl-C (or any failure) shuts the tree down: the announcement comes after
    try:
        if http is not None:
            server = serve(system, host, http, token, allow_host)
        if hook is not None:
            call_hook(hook, str(on_start), system)
        # Ctrl-C sets an event the view waits on: a KeyboardInterrupt could land anywhere
        # (inside a library that swallows it: seen once in a hundred runs on a busy machine)
        stop_requested = threading.Event()
        on_main = threading.current_thread() is threading.main_thread()  # (signals: only there)
        if on_main:
            previous = signal.signal(signal.SIGINT, lambda signum, frame: stop_requested.set())
        try:
            console.print(
                f"started {spec.id} with {len(system.paths())} agents"
                + (f"; health at {server.url}" if server else "")
                + "; Ctrl-C to stop",
                highlight=False,
                markup=False,
            )
            sys.stdout.flush()
            watch(system, console, refresh, duration, stop_requested)
        finally:
            if on_main:
                signal.signal(signal.SIGINT, previous)  # a second Ctrl-C interrupts the shutdown
    except KeyboardInterrupt:
        pass
    except BaseException:
        with contextlib.suppress(Exception):  # the failure that got us here is what to report
            stop(system, server)
        raise
    console.print("\nstopping: children in reverse order ...", markup=False)
    health = system.health()
    stop(system, server)
    console.print(status_table(health.model_dump(mode="json")))
    console.print(
        f"stopped {spec.id}; dead letters: {health.dead_letters or 'none'}",
        highlight=False,
        markup=False,
    )


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
        _error(f"error: {exc}")
        return 2
    except ValidationError as exc:
        _error(f"error: invalid input: {_first_error(exc)}")
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
            _error(f"error: {exc.format_message()}")
            return code
        if type(exc).__name__ == "Exit" and isinstance(code, int):
            return code
        _error(f"error: {type(exc).__name__}: {exc}")
        return 2
    return result if isinstance(result, int) else 0


def _error(line: str) -> None:
    """One line on stderr, taken literally (agent and endpoint text is never markup)."""
    errors.print(line, highlight=False, soft_wrap=True, markup=False)


def run_main() -> None:
    """Console-script entry point."""
    sys.exit(main())
