"""The HTTP endpoint under hostile or careless clients: malformed and over-long requests, a
foreign Host (DNS rebinding), more connections than it handles, and slow clients. Real
sockets on 127.0.0.1; no timing assertions."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest

from supervisor import ChildSpec, Supervisor, System, start
from supervisor.inspect._http import HealthServer, HttpLimits, serve_http
from supervisor.testing import capture_events, wait_until
from tests.agents import Echo


def tree() -> Supervisor:
    return Supervisor("root", children=[ChildSpec("echo", Echo)])


@contextmanager
def running(**kwargs: object) -> Iterator[tuple[System, HealthServer]]:
    with start(tree()) as system, serve_http(system, **kwargs) as server:  # type: ignore[arg-type]
        yield system, server


def connect(server: HealthServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30.0)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def exchange(server: HealthServer, data: bytes) -> bytes:
    with connect(server) as sock:
        sock.sendall(data)
        return read_all(sock)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def handler_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


# -- malformed and over-long requests -----------------------------------------------------------


@pytest.mark.parametrize(
    "request_line",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/1.1 extra\r\n\r\n",
        b"GET /health HTTP/x.y\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello, sort of
    ],
)
def test_a_malformed_request_is_answered_400_in_json(request_line: bytes) -> None:
    with running() as (_, server), capture_events() as events:
        answer = exchange(server, request_line)
        assert status_of(answer) == 400
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"application/json" in head
        assert body.startswith(b'{"error":')
        events.wait_for("http_request", status=400)


def test_an_over_long_url_is_answered_414() -> None:
    with running(limits=HttpLimits(max_url=1024)) as (_, server):
        assert status_of(exchange(server, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n")) == 414
        # beyond http.server's own line limit too
        huge = b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"
        assert status_of(exchange(server, huge)) == 414
        assert httpx.get(server.url + "health", timeout=10.0).status_code == 200


def test_the_default_url_limit_still_allows_a_long_query() -> None:
    with running() as (_, server):
        resp = httpx.get(server.url + "nope?" + "q" * 4000, timeout=10.0)
        assert resp.status_code == 404


# -- Host check (DNS rebinding) ----------------------------------------------------------------


def test_a_foreign_host_header_is_refused_421_on_the_tokenless_loopback_bind() -> None:
    with running() as (_, server), capture_events() as events:
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            for route in ("/", "/health", "/tree", "/metrics"):
                resp = http.get(route, headers={"Host": f"attacker.example:{server.port}"})
                assert resp.status_code == 421, route
                assert "actors" not in resp.text
            assert http.post("/health", headers={"Host": "attacker.example"}).status_code == 421
            for host in ("localhost", "127.0.0.1", "[::1]", "LOCALHOST.", "127.0.0.2"):
                resp = http.get("/health", headers={"Host": f"{host}:{server.port}"})
                assert resp.status_code == 200, host
        events.wait_for("http_request", status=421, level="warning")
        # an HTTP/1.0 request without any Host header (not a browser) is still answered
        assert status_of(exchange(server, b"GET /health HTTP/1.0\r\n\r\n")) == 200
        two = b"GET /health HTTP/1.1\r\nHost: localhost\r\nHost: attacker.example\r\n\r\n"
        assert status_of(exchange(server, two)) == 400


def test_allowed_hosts_replaces_the_default_list() -> None:
    with running(allowed_hosts=["hive.internal"]) as (_, server):
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            assert http.get("/health", headers={"Host": "hive.internal:80"}).status_code == 200
            assert http.get("/health", headers={"Host": "HIVE.INTERNAL"}).status_code == 200
            assert http.get("/health", headers={"Host": "localhost"}).status_code == 421
    with running(allowed_hosts=["*"]) as (_, server):
        resp = httpx.get(server.url + "health", headers={"Host": "any.example"}, timeout=10.0)
        assert resp.status_code == 200


def test_the_host_check_comes_before_the_token_check_and_a_wildcard_bind_takes_any_host() -> None:
    good = {"Authorization": "Bearer tok"}
    with running(token="tok") as (_, server):
        resp = httpx.get(
            server.url + "health", headers={**good, "Host": "attacker.example"}, timeout=10.0
        )
        assert resp.status_code == 421
    with running(host="0.0.0.0", token="tok") as (_, server):
        url = f"http://127.0.0.1:{server.port}/health"
        resp = httpx.get(url, headers={**good, "Host": "hive.example.com"}, timeout=10.0)
        assert resp.status_code == 200
        assert httpx.get(url, headers={"Host": "hive.example.com"}, timeout=10.0).status_code == 401


# -- connection cap -----------------------------------------------------------------------------


def test_connections_beyond_the_cap_are_answered_503_at_once_and_take_no_thread() -> None:
    limits = HttpLimits(max_connections=3, request_timeout=30.0)
    with running(limits=limits) as (_, server), ExitStack() as idle:
        held = [idle.enter_context(connect(server)) for _ in range(3)]
        wait_until(lambda: server.active_connections == 3)
        extra = [idle.enter_context(connect(server)) for _ in range(20)]
        for sock in extra:  # answered without the client sending anything
            answer = read_all(sock)
            assert status_of(answer) == 503
            assert answer.endswith(b'{"error":"too many connections"}')
        assert server.refused_connections == 20
        assert server.active_connections == 3
        assert handler_threads() <= 3
        for sock in held:
            sock.close()
        wait_until(lambda: server.active_connections == 0)
        assert httpx.get(server.url + "health", timeout=10.0).status_code == 200


def test_limits_are_validated_and_the_backlog_is_larger_than_five() -> None:
    assert HttpLimits().backlog >= 128
    with running(limits=HttpLimits(backlog=256)) as (_, server):
        assert server._server.request_queue_size == 256
    for bad in ({"max_connections": 0}, {"request_timeout": 0.0}, {"backlog": 0}):
        with pytest.raises(ValueError):
            HttpLimits(**bad)


# -- slow clients --------------------------------------------------------------------------------


def test_a_silent_client_is_answered_408_and_closed() -> None:
    with running(limits=HttpLimits(request_timeout=0.3)) as (_, server), connect(server) as sock:
        answer = read_all(sock)
        assert status_of(answer) == 408
        wait_until(lambda: server.active_connections == 0)


def test_a_trickling_client_is_cut_off_while_other_clients_are_answered() -> None:
    with running(limits=HttpLimits(request_timeout=2.0)) as (_, server), connect(server) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        wait_until(lambda: server.active_connections == 1)
        # another client is answered while the slow one holds its connection
        assert httpx.get(server.url + "health", timeout=10.0).status_code == 200
        # one byte of a header at a time, each well inside the timeout, until the server
        # closes the connection: the deadline covers the whole request, not each read
        while not select.select([slow], [], [], 0.05)[0]:  # readable: answered or closed
            try:
                slow.send(b"a")
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = read_all(slow)
        assert answer == b"" or status_of(answer) == 408
        wait_until(lambda: server.active_connections == 0)
        assert httpx.get(server.url + "health", timeout=10.0).status_code == 200


# -- what still holds ----------------------------------------------------------------------------


def test_the_page_keeps_its_policy_and_the_token_is_still_required() -> None:
    with running(token="s3cret") as (_, server), httpx.Client(base_url=server.url) as http:
        assert http.get("/health").status_code == 401
        page = http.get("/", headers={"Authorization": "Bearer s3cret"})
        assert page.status_code == 200
        assert "default-src 'none'" in page.headers["content-security-policy"]
