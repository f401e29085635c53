"""The live tree page in a real headless browser (Debian's chromium driven by Playwright).

Needs `playwright` (pip; never `playwright install`: it downloads a browser) and chromium
(apt: chromium). Skips with the reason when either is missing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from actors import Agent
from strategies import BreakerPolicy, OneForOne
from supervisor import ChildSpec, ExecutionStatus, Supervisor, start
from supervisor.inspect._http import serve_http
from supervisor.testing import wait_until
from tests.agents import Echo, Flaky, Human, Switch

# CI sets HIVEKEEPER_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip.
_REQUIRED = os.environ.get("HIVEKEEPER_REQUIRE_BROWSER") == "1"
CHROMIUM = os.environ.get("HIVEKEEPER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if _REQUIRED:
    from playwright import sync_api

    assert Path(CHROMIUM).exists(), f"HIVEKEEPER_REQUIRE_BROWSER=1 but no chromium at {CHROMIUM}"
else:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"no chromium at {CHROMIUM} (apt-get install chromium, or set HIVEKEEPER_CHROMIUM)",
            allow_module_level=True,
        )

CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
TIMEOUT_MS = 20_000
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


class Crasher(Agent):
    """Crashes, with markup in its error, on "boom"; echoes anything else."""

    def handle(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError(HOSTILE)
        return message


def demo_tree(switch: Switch) -> Supervisor:
    return Supervisor(
        "root",
        strategy=OneForOne(max_restarts=10, within_seconds=60.0),
        children=[
            ChildSpec("echo", Echo),
            ChildSpec("crasher", Crasher),
            ChildSpec(
                "flaky",
                Flaky,
                args=(switch,),
                breaker=BreakerPolicy(fail_max=2, reset_timeout=600.0),
                fallback=Human,
            ),
            Supervisor("team", children=[ChildSpec("a", Echo)]),
        ],
    )


@contextmanager
def browser_page() -> Iterator[Any]:
    """A page in a fresh headless chromium (its own temporary profile), closed afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="hivekeeper-chromium-") as profile,
        sync_api.sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 900},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            context.close()


def node(path: str) -> str:
    return f'[data-path="{path}"]'


def test_page_draws_the_live_tree_and_follows_restarts_and_breakers() -> None:
    switch = Switch(failing=True)
    problems: list[str] = []
    with (
        start(demo_tree(switch)) as system,
        serve_http(system, token="page-token") as server,
        browser_page() as page,
    ):
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(server.url + "?token=page-token")

        # nodes for every known path appear (polling the DOM, bounded by TIMEOUT_MS)
        for path in (
            "root",
            "root/echo",
            "root/crasher",
            "root/flaky",
            "root/flaky#Human",
            "root/team",
            "root/team/a",
        ):
            page.wait_for_selector(node(path))
        assert page.get_attribute(node("root/echo"), "data-state") == "running"
        assert "state-running" in (page.get_attribute(node("root/echo"), "class") or "")
        assert "kind-supervisor" in (page.get_attribute(node("root/team"), "class") or "")
        badge = f"{node('root/flaky')} > .head > .badge.breaker"
        assert page.inner_text(badge) == "breaker closed"
        assert "breaker-closed" in (page.get_attribute(badge, "class") or "")
        assert page.text_content("#tree-state") == "running"
        # the fallback is drawn under its primary
        assert (
            page.locator(f"{node('root/flaky')} > .fallbacks {node('root/flaky#Human')}").count()
            == 1
        )

        # a crash: the page shows the restart and the error, as text
        assert page.get_attribute(node("root/crasher"), "data-restarts") == "0"
        assert system.ask("root/crasher", "boom", timeout=5.0).status is ExecutionStatus.FAILURE
        wait_until(lambda: system.health().actors["root/crasher"].restarts == 1)
        page.wait_for_function(
            "p => document.querySelector(`[data-path=\"${p}\"]`)?.dataset.restarts === '1'",
            arg="root/crasher",
        )
        error = f"{node('root/crasher')} > pre.error"
        assert page.inner_text(error) == f"RuntimeError: {HOSTILE}"
        assert page.evaluate("typeof window.pwned") == "undefined"
        assert page.locator("main img, main script").count() == 0

        # the breaker opens: badge and colours follow
        for _ in range(2):
            system.ask("root/flaky", "refund", timeout=5.0)
        page.wait_for_selector(f"{node('root/flaky')} > .head > .badge.breaker-open")
        page.wait_for_function("document.body.dataset.treeState === 'degraded'")
        assert page.get_attribute(node("root/flaky"), "data-state") == "degraded"
        assert page.get_attribute("#header", "class") == "tree-degraded"

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "tree-page.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 0
        assert problems == []


def test_page_without_the_token_says_so() -> None:
    with (
        start(demo_tree(Switch(failing=False))) as system,
        serve_http(system, token="page-token") as server,
        browser_page() as page,
    ):
        response = page.goto(server.url)
        assert response is not None
        assert response.status == 401
        # the right token in the page URL: the page loads and its fetches carry the header
        page.goto(server.url + "?token=page-token")
        page.wait_for_selector(node("root/team/a"))
        assert page.is_hidden("#problem")
