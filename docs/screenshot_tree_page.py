"""Take docs/tree-page.png: a demo tree served by serve_http(), drawn by the live page in
headless chromium (Debian's, driven by Playwright; see tests/test_browser.py).

    .venv/bin/python docs/screenshot_tree_page.py [OUTPUT.png]

The demo tree: a triage agent, a billing agent whose circuit breaker is open (its rule-based
fallback answers instead), a writer with a fallback, a parser that crashed twice, and a
research team whose fetcher keeps crashing and waits out a long backoff.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from actors import Agent, ExecutionResult, ExecutionStatus, Rule, RuleBasedAgent
from strategies import Backoff, BreakerPolicy, OneForOne, RestForOne
from supervisor import ChildSpec, Supervisor, System, start
from supervisor.inspect._http import serve_http

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "tree-page.png"


def _think(seconds: float) -> None:
    """Stand-in for a model call's latency."""
    threading.Event().wait(seconds)


class Triage(Agent):
    def handle(self, message: Any) -> Any:
        _think(0.004)
        return {"route": "billing" if "refund" in str(message) else "writer"}


class Billing(Agent):
    """The model behind it returns junk: every answer fails validation."""

    def handle(self, message: Any) -> Any:
        _think(0.02)
        return ExecutionResult(status=ExecutionStatus.INVALID_OUTPUT, error="model returned junk")


class BillingRules(RuleBasedAgent):
    rules = (Rule(keywords=("refund",), reply={"action": "route_to_human", "queue": "billing"}),)


class Writer(Agent):
    def handle(self, message: Any) -> Any:
        _think(0.03)
        return f"draft: {message}"


class CannedReply(RuleBasedAgent):
    default = "Thanks, we will get back to you shortly."


class Parser(Agent):
    def handle(self, message: Any) -> Any:
        if message == "malformed":
            raise ValueError("unexpected token '}' at line 3, column 14")
        return {"parsed": message}


class Fetcher(Agent):
    def handle(self, message: Any) -> Any:
        raise ConnectionError("search API unreachable: connection refused")


def demo_tree() -> Supervisor:
    return Supervisor(
        "support",
        strategy=OneForOne(max_restarts=5, within_seconds=60.0),
        children=[
            ChildSpec("triage", Triage),
            ChildSpec(
                "billing",
                Billing,
                breaker=BreakerPolicy(fail_max=3, reset_timeout=300.0),
                fallback=BillingRules,
            ),
            ChildSpec("writer", Writer, fallback=CannedReply, mailbox_size=100),
            ChildSpec("parser", Parser),
            Supervisor(
                "research",
                strategy=RestForOne(
                    max_restarts=10,
                    within_seconds=60.0,
                    backoff=Backoff(min_backoff=600.0, max_backoff=600.0, random_factor=0.0),
                ),
                children=[ChildSpec("fetcher", Fetcher), ChildSpec("ranker", Triage)],
            ),
        ],
    )


def _wait(predicate: Any, what: str, timeout: float = 20.0) -> None:
    tick = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        tick.wait(0.05)
    msg = f"timed out waiting for {what}"
    raise TimeoutError(msg)


def drive(system: System) -> None:
    """Traffic that leaves the tree in an interesting state."""
    for i in range(40):
        system.ask("support/triage", f"ticket {i}: refund" if i % 3 == 0 else f"ticket {i}")
    for i in range(12):
        system.ask("support/writer", f"reply to ticket {i}")
    for _ in range(4):
        system.ask("support/billing", "refund for order 1234")
    for msg in ("a", "malformed", "b", "malformed", "c"):
        system.ask("support/parser", msg)
    system.tell("support/research/fetcher", "latest papers on supervision trees")
    _wait(
        lambda: (
            system.health().actors["support/parser"].restarts == 2
            and system.health().actors["support/research/fetcher"].state == "backoff"
        ),
        "the parser's restarts and the fetcher's backoff",
    )


def screenshot(output: Path) -> None:
    chromium = os.environ.get("HIVEKEEPER_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium not found: apt-get install chromium (or set HIVEKEEPER_CHROMIUM)")
    with start(demo_tree(), default_timeout=10.0) as system:
        drive(system)
        with (
            serve_http(system) as server,
            tempfile.TemporaryDirectory(prefix="hivekeeper-chromium-") as profile,
            sync_playwright() as playwright,
        ):
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=chromium,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1100, "height": 900},
            )
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.goto(server.url)
                page.wait_for_selector('[data-path="support/research/fetcher"]', timeout=20_000)
                output.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(output), full_page=True)
            finally:
                context.close()
    sys.stdout.write(f"saved {output}\n")


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT)
