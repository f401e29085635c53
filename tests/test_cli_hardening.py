"""The hivekeeper command against odd URLs, foreign endpoints, hostile agent text, busy ports,
narrow terminals, a Ctrl-C at the worst moment, and the --on-start hook."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from strategies import OneForOne
from supervisor import ChildSpec, Supervisor, System, cli, start
from supervisor.cli import main
from supervisor.inspect._cli_view import status_table
from supervisor.testing import capture_events, wait_until
from tests import cli_trees
from tests.agents import AlwaysCrash, Echo

ROOT = Path(__file__).resolve().parents[1]
TAIL = "TAIL-OF-A-LONG-ERROR"


@contextmanager
def live_system(*children: ChildSpec) -> Iterator[tuple[System, str]]:
    tree = Supervisor("live", children=[ChildSpec("echo", Echo), *children])
    with start(tree) as system:
        server = system.serve_http()
        system.ask("live/echo", "x", timeout=5.0)
        yield system, server.url


@contextmanager
def foreign_server(status: int, body: bytes, ctype: str) -> Iterator[str]:
    """Some other HTTP server (not hivekeeper) answering every GET the same way."""

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# -- URLs and answers -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["health", "health/", "tree", "metrics", "", "?x=1"])
def test_status_and_tree_accept_the_url_of_a_route(capsys: Any, suffix: str) -> None:
    with live_system() as (_, url):
        assert main(["status", url + suffix]) == 0
        out = capsys.readouterr().out
        assert "live/echo" in out
        assert "None: None" not in out
        assert main(["tree", url + suffix]) == 0
        captured = capsys.readouterr()
        assert "echo" in captured.out
        assert "KeyError" not in captured.err


@pytest.mark.parametrize(
    ("status", "body", "ctype", "message"),
    [
        (404, b"<h1>nope</h1>", "text/html", "HTTP 404"),
        (500, b'{"error": "boom"}', "application/json", "HTTP 500"),
        (302, b"", "text/plain", "HTTP 302"),
        (200, b"<html></html>", "text/html", "did not answer JSON"),
        (200, b'{"actors": [], "tree": 1}', "application/json", "not a hivekeeper"),
        (503, b"down for maintenance", "text/plain", "did not answer JSON"),
    ],
)
def test_an_answer_that_is_not_a_health_document_exits_2_and_says_what_came(
    capsys: Any, status: int, body: bytes, ctype: str, message: str
) -> None:
    with foreign_server(status, body, ctype) as url:
        for command in ("status", "tree"):
            assert main([command, url]) == 2, command
            err = capsys.readouterr().err
            assert message in err, err
            assert err.count("\n") == 1
            assert "Traceback" not in err


def test_a_failed_tree_is_reported_as_http_503_and_exits_1(capsys: Any) -> None:
    tree = Supervisor(
        "doomed", strategy=OneForOne(max_restarts=0), children=[ChildSpec("w", AlwaysCrash)]
    )
    with start(tree) as system:
        server = system.serve_http()
        system.ask("doomed/w", "x", timeout=5.0)
        wait_until(lambda: system.state == "failed")
        for command in ("status", "tree"):
            assert main([command, server.url + "health"]) == 1
            captured = capsys.readouterr()
            assert "HTTP 503: the tree is failed" in captured.err
            assert "doomed" in captured.out


def test_a_url_that_is_not_http_exits_2(capsys: Any) -> None:
    assert main(["status", "127.0.0.1:8321"]) == 2
    assert "expected an http:// URL" in capsys.readouterr().err


# -- agent text is text --------------------------------------------------------------------------


def test_markup_in_an_agent_error_is_printed_as_text(capsys: Any) -> None:
    with live_system(ChildSpec("bad", cli_trees.MarkupCrash)) as (system, url):
        system.ask("live/bad", "x", timeout=5.0)
        wait_until(lambda: system.health().actors["live/bad"].restarts == 1)
        assert main(["status", url]) == 0
        captured = capsys.readouterr()
        assert "MarkupError" not in captured.err
        flat = "".join(captured.out.split())
        assert "items[/0]is[bold]not[/bold]alist[/]" in flat
        assert main(["tree", url]) == 0
        assert "items[/0]" in capsys.readouterr().out


def test_an_error_line_with_markup_is_printed_as_is(capsys: Any) -> None:
    assert main(["check", "tests.cli_trees:[/0]"]) == 2
    err = capsys.readouterr().err
    assert "[/0]" in err
    assert "MarkupError" not in err


# -- tables fit the console --------------------------------------------------------------------


def health_doc() -> dict[str, Any]:
    long_error = "ValueError: " + " ".join(f"word{i}" for i in range(60)) + " " + TAIL
    actor = {
        "kind": "agent",
        "state": "running",
        "restarts": 3,
        "breaker": {"state": "half_open"},
        "mailbox_depth": 12,
        "mailbox_limit": 100,
        "processed": 123456,
        "latency_p99_ms": 1234.5,
    }
    return {
        "root": "desk",
        "state": "degraded",
        "healthy": False,
        "actors": {
            "desk": {"kind": "supervisor", "state": "running"},
            "desk/triage": {**actor, "last_error": long_error},
            "desk/triage#Human": {**actor, "kind": "fallback"},
            "desk/team/writer": actor,
        },
    }


@pytest.mark.parametrize("width", [80, 100, 150, 200])
def test_the_status_table_fits_the_console(width: int) -> None:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(status_table(health_doc()))
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    header = next(line for line in lines if "path" in line)
    for column in ("path", "state", "restarts", "breaker", "mailbox", "processed", "p99 ms"):
        assert column in header, (column, header)
    for path in ("desk/triage", "desk/triage#Human", "desk/team/writer"):
        assert any(path in line.split() for line in lines), path
    for value in ("half_open", "123456", "1234.5", "12/100", "degraded"):
        assert value in text, value
    assert TAIL in text  # wrapped, never cut off


def test_status_output_fits_80_columns_when_piped() -> None:
    with live_system() as (_, url):
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        exe = Path(sys.executable).with_name("hivekeeper")
        done = subprocess.run(
            [str(exe), "status", url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=50,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "processed" in done.stdout
    assert any("live/echo" in line.split() for line in lines)


# -- run: busy port, Ctrl-C, --on-start ------------------------------------------------------


def test_run_on_a_busy_port_exits_2_without_starting_the_tree(capsys: Any) -> None:
    with socket.socket() as busy, capture_events() as events:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["run", "tests.cli_trees:small", "--http", str(port), "--for", "0"]) == 2
        assert "cannot listen" in capsys.readouterr().err
        assert main(["run", "tests.cli_trees:small", "--http", "0", "--host", "0.0.0.0"]) == 2
        assert "without a token" in capsys.readouterr().err
        assert not events.matching("tree_started")


class InterruptedConsole(Console):
    """A Console on which SIGINT lands while the readiness line is printed."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if any("Ctrl-C to stop" in str(o) for o in objects):
            raise KeyboardInterrupt
        super().print(*objects, **kwargs)


def test_ctrl_c_during_the_readiness_line_still_stops_the_tree_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", InterruptedConsole(file=out, width=100))
    with capture_events() as events:
        assert main(["run", "tests.cli_trees:small", "--refresh", "0.05"]) == 0
    text = out.getvalue()
    assert "stopping: children in reverse order" in text
    assert "stopped small" in text
    assert events.matching("tree_stopped")


def test_on_start_hands_user_code_the_running_system(capsys: Any) -> None:
    cli_trees.seen.clear()
    argv = ["run", "tests.cli_trees:small", "--for", "0", "--on-start", "tests.cli_trees:remember"]
    assert main(argv) == 0
    [(system, state, answer)] = cli_trees.seen
    assert isinstance(system, System)
    assert state == "running"
    assert answer.data == "from the hook"
    assert system.state == "stopped"
    out = capsys.readouterr().out
    assert out.index("started small") < out.index("stopped small")


def test_a_failing_on_start_hook_stops_the_tree_and_exits_2(capsys: Any) -> None:
    cli_trees.seen.clear()
    argv = ["run", "tests.cli_trees:small", "--on-start", "tests.cli_trees:failing_hook"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--on-start tests.cli_trees:failing_hook failed: RuntimeError: hook broke" in err
    [(system, _, _)] = cli_trees.seen
    assert system.state == "stopped"


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ("tests.cli_trees:not_callable", "is a int, not a function"),
        ("tests.cli_trees:nope", "has no attribute 'nope'"),
        ("no_colon", "expected MODULE:FUNC"),
    ],
)
def test_a_bad_on_start_target_exits_2_before_the_tree_starts(
    capsys: Any, hook: str, message: str
) -> None:
    with capture_events() as events:
        assert main(["run", "tests.cli_trees:small", "--on-start", hook]) == 2
    assert message in capsys.readouterr().err
    assert not events.matching("tree_started")


def test_run_help_documents_the_hook() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("hivekeeper")), "run", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=50,
        check=False,
    )
    assert result.returncode == 0
    assert "--on-start" in result.stdout
    assert "FUNC(system)" in result.stdout


def test_ctrl_c_while_the_tree_starts_stops_what_started_in_order(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """SIGINT landing inside start(): what had started is shut down in order (on_stop runs,
    no thread is left), and `run` exits 130 with one line instead of a traceback."""
    from supervisor.system._system import System as SystemClass

    booted = SystemClass._boot

    def boot_then_interrupt(self: SystemClass, timeout: float) -> None:
        booted(self, timeout)  # the tree is up ...
        raise KeyboardInterrupt  # ... and Ctrl-C lands before start() returns

    monkeypatch.setattr(SystemClass, "_boot", boot_then_interrupt)
    with capture_events() as events:
        assert main(["run", "tests.cli_trees:small", "--for", "0"]) == 130
    assert events.matching("tree_stopped")
    assert "interrupted while starting small: stopped" in capsys.readouterr().err
