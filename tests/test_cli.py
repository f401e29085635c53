"""The hivekeeper command: every command on good and bad input, and a real `hivekeeper run`
stopped with SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from supervisor.cli import app, main

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_check_a_good_tree():
    result = runner.invoke(app, ["check", "tests.cli_trees:small"])
    assert result.exit_code == 0, result.output
    assert "small/team/a" in result.output
    assert "fallback=Human" in result.output
    assert "ok: 2 supervisors, 3 agents, 1 fallbacks" in result.output


def test_check_a_callable_that_returns_a_tree():
    result = runner.invoke(app, ["check", "tests.cli_trees:make_small"])
    assert result.exit_code == 0


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.cli_trees:broken", "duplicate child ids ['x']"),
        ("tests.cli_trees:not_a_tree", "is a dict, not a supervisor.Supervisor tree"),
        ("tests.cli_trees:missing", "has no attribute 'missing'"),
        ("tests.no_such_module:tree", "cannot import 'tests.no_such_module'"),
        ("just_a_module", "expected MODULE:TREE"),
    ],
)
def test_bad_trees_get_one_line_errors_and_exit_2(capsys, target, message):
    assert main(["check", target]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [["bogus"], ["demo", "--tickets", "zero"], ["run"], ["status"], ["demo", "--concurrency", "0"]],
)
def test_bad_arguments_get_one_line_errors(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "Traceback" not in err


def test_status_and_tree_of_an_unreachable_endpoint_exit_2(capsys):
    assert main(["status", "http://127.0.0.1:9"]) == 2
    assert "cannot reach" in capsys.readouterr().err
    assert main(["tree", "http://127.0.0.1:9"]) == 2


def test_run_for_a_while_then_summary():
    result = runner.invoke(
        app, ["run", "tests.cli_trees:small", "--for", "0.3", "--refresh", "0.1"]
    )
    assert result.exit_code == 0, result.output
    assert "started small with 4 agents" in result.output
    assert "stopped small" in result.output


def test_demo_runs_offline():
    result = runner.invoke(app, ["demo", "--tickets", "12", "--concurrency", "3", "--offline"])
    assert result.exit_code == 0, result.output
    assert "12 tickets in" in result.output
    assert "answered by agents" in result.output


@pytest.mark.timeout(150)
def test_hivekeeper_run_in_a_real_process_stops_cleanly_on_sigint():
    """SIGINT is sent only once the child has announced it is ready ("Ctrl-C to stop"),
    which it does only once Ctrl-C leads to the ordered shutdown: never a race."""
    exe = Path(sys.executable).with_name("hivekeeper")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(
        [str(exe), "run", "tests.cli_trees:small", "--refresh", "0.1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    started = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "Ctrl-C to stop" in line:
                started.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert started.wait(60), "".join(lines)  # generous: the machine may be busy
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:  # where is it stuck? faulthandler prints every thread
            proc.send_signal(signal.SIGABRT)
            proc.wait(10)
            reader.join(10)
            pytest.fail("no exit 60 s after SIGINT:\n" + "".join(lines)[-6000:])
        assert code == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(10)
    output = "".join(lines)
    assert "stopping: children in reverse order" in output
    assert "stopped small" in output
    assert "Traceback" not in output


def test_status_and_tree_of_a_running_system(capsys):
    from strategies import OneForOne
    from supervisor import ChildSpec, Supervisor, start
    from tests.agents import AlwaysCrash, Echo

    with start(Supervisor("live", children=[ChildSpec("echo", Echo)])) as system:
        server = system.serve_http()
        system.ask("live/echo", "x", timeout=5.0)
        assert main(["status", server.url]) == 0
        out = capsys.readouterr().out
        assert "live/echo" in out
        assert "running" in out
        assert main(["tree", server.url]) == 0
        assert "echo" in capsys.readouterr().out
    failing = Supervisor(
        "doomed", strategy=OneForOne(max_restarts=0), children=[ChildSpec("w", AlwaysCrash)]
    )
    with start(failing) as system:
        server = system.serve_http()
        system.ask("doomed/w", "x", timeout=5.0)
        assert main(["status", server.url]) == 1
        assert main(["tree", server.url]) == 1


def test_status_needs_the_token_of_a_protected_endpoint(capsys):
    from supervisor import ChildSpec, Supervisor, start
    from tests.agents import Echo

    with start(Supervisor("sec", children=[ChildSpec("echo", Echo)])) as system:
        server = system.serve_http(token="s3cret")
        assert main(["status", server.url]) == 2
        assert "401" in capsys.readouterr().err
        assert main(["status", server.url, "--token", "s3cret"]) == 0
