"""The HTTP endpoint: real requests over real sockets on 127.0.0.1 to a running tree."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors import Agent
from strategies import BreakerPolicy, OneForOne
from supervisor import ChildSpec, ExecutionStatus, Supervisor, System, start
from supervisor.inspect._http import HealthServer, is_loopback, serve_http
from supervisor.inspect._metrics import render_metrics
from supervisor.testing import wait_until
from tests.agents import AlwaysCrash, Crashy, Echo, Flaky, Human, Switch

HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


class Hostile(Agent):
    """Crashes with markup in its error text."""

    def handle(self, message: Any) -> Any:
        raise RuntimeError(HOSTILE)


def small_tree(switch: Switch | None = None) -> Supervisor:
    return Supervisor(
        "root",
        strategy=OneForOne(max_restarts=10, within_seconds=60.0),
        children=[
            ChildSpec("echo", Echo, mailbox_size=50),
            ChildSpec("crashy", Crashy),
            ChildSpec(
                "flaky",
                Flaky,
                args=(switch or Switch(failing=True),),
                breaker=BreakerPolicy(fail_max=2, reset_timeout=600.0),
                fallback=Human,
            ),
        ],
    )


@contextmanager
def serving(system: System, token: str | None = None) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with (
        serve_http(system, token=token) as server,
        httpx.Client(base_url=server.url, timeout=10.0, headers=headers) as client,
    ):
        yield client


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[(name, frozenset(labels.items()))]


def restarted(system: System, path: str, count: int) -> None:
    wait_until(
        lambda: (a := system.health().actors[path]).restarts == count and a.state == "running"
    )


# -- /health and /tree ------------------------------------------------------------------------


def test_health_and_tree_answer_200_with_the_snapshot_while_running() -> None:
    with start(small_tree()) as system, serving(system) as http:
        system.ask("root/echo", "hi", timeout=5.0)
        resp = http.get("/health")
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/json; charset=utf-8"
        assert resp.headers["cache-control"] == "no-store"
        body = resp.json()
        assert body["root"] == "root"
        assert body["state"] == "running"
        assert body["healthy"] is True
        assert body["actors"]["root/echo"]["processed"] == 1
        assert body["actors"]["root/echo"]["mailbox_limit"] == 50
        assert body["actors"]["root/flaky"]["breaker"]["state"] == "closed"
        assert set(body["actors"]) == set(system.health().actors)

        tree = http.get("/tree")
        assert tree.status_code == 200
        nested = tree.json()
        assert nested["state"] == "running"
        assert nested["tree"]["path"] == "root"
        children = {c["path"]: c for c in nested["tree"]["children"]}
        assert list(children) == ["root/echo", "root/crashy", "root/flaky"]
        assert [f["path"] for f in children["root/flaky"]["fallbacks"]] == ["root/flaky#Human"]


def test_a_degraded_tree_still_answers_200() -> None:
    with start(small_tree()) as system, serving(system) as http:
        for _ in range(2):  # opens the breaker: the fallback answers in flaky's place
            system.ask("root/flaky", "refund please", timeout=5.0)
        wait_until(lambda: system.health().state == "degraded")
        resp = http.get("/health")
        assert resp.status_code == 200
        assert resp.json()["state"] == "degraded"
        assert resp.json()["healthy"] is False
        assert http.get("/tree").status_code == 200


def test_503_once_the_root_has_failed() -> None:
    tree = Supervisor(
        "root", strategy=OneForOne(max_restarts=0), children=[ChildSpec("w", AlwaysCrash)]
    )
    with start(tree) as system, serving(system) as http:
        assert http.get("/health").status_code == 200
        system.ask("root/w", "anything", timeout=5.0)
        wait_until(lambda: system.state == "failed")
        health = http.get("/health")
        assert health.status_code == 503
        assert health.json()["state"] == "failed"
        tree_resp = http.get("/tree")
        assert tree_resp.status_code == 503
        assert tree_resp.json()["tree"]["state"] == "failed"
        samples = metric_samples(http.get("/metrics").text)
        assert value(samples, "hivekeeper_tree_up", path="root") == 0.0
        assert value(samples, "hivekeeper_tree_failed", path="root") == 1.0
        assert value(samples, "hivekeeper_tree_state", path="root", state="failed") == 1.0


def test_503_after_shutdown() -> None:
    with start(small_tree()) as system, serving(system) as http:
        system.shutdown()
        resp = http.get("/health")
        assert resp.status_code == 503
        assert resp.json()["state"] == "stopped"
        assert http.get("/tree").status_code == 503


def test_unknown_path_is_404_json_and_other_methods_are_405() -> None:
    with start(small_tree()) as system, serving(system) as http:
        missing = http.get("/nope")
        assert missing.status_code == 404
        assert missing.json() == {"error": "not found", "path": "/nope"}
        for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"):
            resp = http.request(method, "/health")
            assert resp.status_code == 405, method
            assert resp.headers["allow"] == "GET"
        assert http.post("/metrics", content=b"x").status_code == 405


# -- /metrics ----------------------------------------------------------------------------------


def test_metrics_reflect_restarts_failures_breakers_and_latency() -> None:
    with start(small_tree()) as system, serving(system) as http:
        for i in range(5):
            assert system.ask("root/echo", i, timeout=5.0).status is ExecutionStatus.SUCCESS
        assert system.ask("root/crashy", "boom", timeout=5.0).status is ExecutionStatus.FAILURE
        restarted(system, "root/crashy", 1)
        for _ in range(3):  # two failures open the breaker; the third goes to the fallback
            system.ask("root/flaky", "refund", timeout=5.0)

        resp = http.get("/metrics")
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        families = {f.name: f for f in text_string_to_metric_families(resp.text)}
        assert families["hivekeeper_handling_seconds"].type == "histogram"
        assert families["hivekeeper_restarts"].type == "counter"
        assert families["hivekeeper_mailbox_depth"].type == "gauge"
        s = metric_samples(resp.text)

        assert value(s, "hivekeeper_tree_up", path="root") == 1.0
        assert value(s, "hivekeeper_tree_state", path="root", state="degraded") == 1.0
        assert value(s, "hivekeeper_restarts_total", path="root/crashy") == 1.0
        assert value(s, "hivekeeper_restarts_total", path="root/echo") == 0.0
        assert value(s, "hivekeeper_failures_total", path="root/crashy", kind="crash") == 1.0
        assert value(s, "hivekeeper_supervisor_budget_used", path="root") == 1.0
        assert value(s, "hivekeeper_supervisor_max_restarts", path="root") == 10.0
        assert value(s, "hivekeeper_supervisor_escalations_total", path="root") == 0.0
        assert value(s, "hivekeeper_actor_state", path="root/crashy", state="running") == 1.0
        assert value(s, "hivekeeper_actor_state", path="root/crashy", state="down") == 0.0

        # echo: five successes, all in the histogram
        processed = value(s, "hivekeeper_messages_processed_total", path="root/echo")
        assert processed == 5.0
        hist = {"path": "root/echo", "status": "success"}
        assert value(s, "hivekeeper_handling_seconds_count", **hist) == processed
        assert value(s, "hivekeeper_handling_seconds_bucket", le="+Inf", **hist) == processed
        assert value(s, "hivekeeper_results_total", **hist) == processed
        assert value(s, "hivekeeper_handling_seconds_sum", **hist) > 0.0
        buckets = [
            (float(labels["le"]), v)
            for (name, frozen), v in s.items()
            if name == "hivekeeper_handling_seconds_bucket"
            and (labels := dict(frozen))["path"] == "root/echo"
        ]
        counts = [v for _, v in sorted(buckets)]
        assert counts == sorted(counts)  # cumulative
        assert value(s, "hivekeeper_mailbox_depth", path="root/echo") == 0.0
        assert value(s, "hivekeeper_mailbox_limit", path="root/echo") == 50.0

        # flaky: two invalid outputs opened its breaker; the fallback answered all three asks
        flaky = {"path": "root/flaky", "status": "invalid_output"}
        assert value(s, "hivekeeper_handling_seconds_count", **flaky) == 2.0
        assert value(s, "hivekeeper_breaker_state", path="root/flaky", state="open") == 1.0
        assert value(s, "hivekeeper_breaker_state", path="root/flaky", state="closed") == 0.0
        assert value(s, "hivekeeper_breaker_opens_total", path="root/flaky") == 1.0
        assert value(s, "hivekeeper_breaker_failures_total", path="root/flaky") == 2.0
        assert value(s, "hivekeeper_degraded", path="root/flaky") == 1.0
        assert value(s, "hivekeeper_fallback_answers_total", path="root/flaky") == 3.0
        assert (
            value(s, "hivekeeper_failures_total", path="root/flaky", kind="invalid_output") == 2.0
        )
        assert value(s, "hivekeeper_failures_total", path="root/flaky", kind="rejected") == 1.0
        assert value(s, "hivekeeper_messages_processed_total", path="root/flaky#Human") == 3.0
        assert not any(
            name == "hivekeeper_breaker_state" and dict(labels)["path"] == "root/echo"
            for name, labels in s
        )


def test_dead_letters_are_counted_by_reason() -> None:
    tree = Supervisor(
        "root", strategy=OneForOne(max_restarts=0), children=[ChildSpec("w", AlwaysCrash)]
    )
    with start(tree) as system:
        system.ask("root/w", "x", timeout=5.0)
        wait_until(lambda: system.state == "failed")
        system.tell("root/w", "nobody will handle this")
        s = metric_samples(render_metrics(system).decode())
        assert value(s, "hivekeeper_dead_letters_total", path="root", reason="failure") == 1.0
        assert value(s, "hivekeeper_agent_dead_letters_total", path="root/w") == 1.0


# -- the page ----------------------------------------------------------------------------------


def test_page_is_self_contained_html_with_a_strict_policy() -> None:
    with start(small_tree()) as system, serving(system) as http:
        resp = http.get("/")
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/html; charset=utf-8"
        csp = resp.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "connect-src 'self'" in csp
        assert "unsafe-inline" not in csp
        html = resp.text
        assert html.startswith("<!doctype html>")
        assert "fetch(treeUrl" in html
        # no external asset or URL of any kind: the machine may be offline
        assert not re.search(r"(?i)\b(?:https?|wss?|ftp):", html)
        assert not re.search(r"""(?i)(?:src|href)\s*=\s*["']?//""", html)
        assert "@import" not in html
        # every JSON value reaches the DOM as text, never as markup
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in html


def test_hostile_error_text_is_escaped_in_json() -> None:
    tree = Supervisor("root", children=[ChildSpec("bad", Hostile)])
    with start(tree) as system, serving(system) as http:
        system.ask("root/bad", "x", timeout=5.0)
        restarted(system, "root/bad", 1)
        for route in ("/health", "/tree"):
            resp = http.get(route)
            assert "<" not in resp.text
            assert ">" not in resp.text
            assert "\\u003cscript\\u003e" in resp.text
        actors = http.get("/health").json()["actors"]
        assert actors["root/bad"]["last_error"] == f"RuntimeError: {HOSTILE}"


# -- security ----------------------------------------------------------------------------------


def test_token_is_required_on_every_route_when_set() -> None:
    with (
        start(small_tree()) as system,
        serve_http(system, token="s3cret") as server,
        httpx.Client(base_url=server.url, timeout=10.0) as http,
    ):
        for route in ("/", "/health", "/tree", "/metrics", "/nope"):
            resp = http.get(route)
            assert resp.status_code == 401, route
            assert resp.headers["www-authenticate"].startswith("Bearer")
            assert "s3cret" not in resp.text
            wrong = http.get(route, headers={"Authorization": "Bearer guess"})
            assert wrong.status_code == 401, route
        assert http.get("/health", headers={"Authorization": "Basic s3cret"}).status_code == 401
        assert http.post("/health", content=b"{}").status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert http.get("/health", headers=good).status_code == 200
        assert http.get("/tree", headers=good).status_code == 200
        assert http.get("/metrics", headers=good).status_code == 200
        assert http.get("/", headers=good).status_code == 200
        assert http.get("/nope", headers=good).status_code == 404
        assert http.post("/health", content=b"{}", headers=good).status_code == 405
        assert http.get("/", headers={"Authorization": "bearer s3cret"}).status_code == 200
        # ?token= opens the page only; the JSON routes need the header
        assert http.get("/?token=s3cret").status_code == 200
        assert http.get("/?token=guess").status_code == 401
        assert http.get("/health?token=s3cret").status_code == 401
        assert http.get("/metrics?token=s3cret").status_code == 401


def test_non_loopback_bind_needs_a_token() -> None:
    with start(small_tree()) as system:
        with pytest.raises(ValueError, match="without a token"):
            serve_http(system, host="0.0.0.0")
        with pytest.raises(ValueError, match="without a token"):
            HealthServer(system, host="192.0.2.10")
        with pytest.raises(ValueError, match="non-empty"):
            serve_http(system, token="")
        with serve_http(system, host="0.0.0.0", port=0, token="tok") as server:
            assert server.host == "0.0.0.0"
            assert server.port > 0
            url = f"http://127.0.0.1:{server.port}/health"
            assert httpx.get(url, timeout=10.0).status_code == 401
            ok = httpx.get(url, headers={"Authorization": "Bearer tok"}, timeout=10.0)
            assert ok.status_code == 200
            assert ok.json()["root"] == "root"


def test_loopback_detection() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.0.2.10", "example.com", ""):
        assert not is_loopback(host), host


# -- lifecycle ---------------------------------------------------------------------------------


def test_close_ends_every_thread_even_with_a_silent_client_and_is_idempotent() -> None:
    with start(small_tree()) as system:
        server = serve_http(system)
        assert server.url == f"http://127.0.0.1:{server.port}/"
        assert httpx.get(server.url + "health", timeout=10.0).status_code == 200
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=10.0)
        try:
            server.close()  # must not wait for the silent client
            server.close()
        finally:
            silent.close()
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "health", timeout=2.0)
        with pytest.raises(RuntimeError, match="closed"):
            server.start()


def test_system_serve_http_is_closed_by_shutdown() -> None:
    with start(small_tree()) as system:
        server = system.serve_http()
        assert isinstance(server, HealthServer)
        assert httpx.get(server.url + "health", timeout=10.0).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "health", timeout=2.0)
