"""An opt-in HTTP endpoint to inspect a running tree, on the standard library only
(http.server.ThreadingHTTPServer in a background thread; no web framework).

    with serve_http(system) as server:          # 127.0.0.1, a free port
        print(server.url)                        # http://127.0.0.1:PORT/

Routes (GET only; any other method is answered 405 with `Allow: GET`, after the token check):
  /         the live tree page (HTML, self-contained; see supervisor.inspect._page)
  /health   system.health() as JSON
  /tree     system.health().tree() as JSON (nested nodes)
  /metrics  Prometheus text format 0.0.4 (see supervisor.inspect._metrics)
  anything else: 404 with a JSON body.
/health and /tree answer 200 while the tree runs (healthy or degraded) and 503 otherwise
(starting, failed, stopping, stopped), with the same JSON body.

Security: the server binds to 127.0.0.1 unless told otherwise, and binding to any address
that is not loopback requires a token (ValueError without one). With a token, every request
must carry `Authorization: Bearer <token>` (compared in constant time), else 401 with
`WWW-Authenticate: Bearer`. The page alone also accepts `/?token=<token>`, so that a browser
can open it; its script then sends the bearer header on its own fetches. The token then sits
in the page's URL (browser history): prefer a loopback bind without a token where possible.
Query strings are never logged. JSON bodies escape <, > and & so that no browser can read
them as markup.

Host check: a request whose Host header names another host is answered 421, so that a web
page cannot read the tree through DNS rebinding. By default the loopback names and addresses
and the bound address are accepted (any Host on a wildcard bind such as 0.0.0.0, which needs
a token anyway); allowed_hosts=[...] replaces that list ("*" accepts any Host).

Limits (supervisor.inspect._http_guard.HttpLimits): at most max_connections connections at once (the
next one is answered 503 and closed), request_timeout seconds to send a whole request (else
408), a listen backlog, and max_url characters of request target (else 414). A malformed
request is answered 400, with a JSON body like every other answer.

Each answered request is an event `http_request` (method, path, status, client) through
supervisor._events.emit, instead of http.server's stderr access log.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterable
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._events import emit
from ._http_guard import HostPolicy, HttpLimits, is_loopback, refuse_connection
from ._http_handler import Handler, json_body
from ._metrics import render_metrics

if TYPE_CHECKING:
    from ..system._system import System

__all__ = ["HealthServer", "HttpLimits", "check_bind", "is_loopback", "serve_http"]


def check_bind(host: str, token: str | None) -> None:
    """ValueError unless (host, token) may serve: a token is non-empty, and any host that is
    not loopback needs one. (HealthServer checks this too; the CLI calls it before starting a
    tree.)"""
    if token is not None and not token.strip():
        msg = "token must be a non-empty string (or None on a loopback address)"
        raise ValueError(msg)
    if token is None and not is_loopback(host):
        msg = (
            f"refusing to serve on {host!r} without a token: anyone who can reach it could "
            "read the tree; pass token=... (clients then send Authorization: Bearer <token>)"
            " or bind to 127.0.0.1"
        )
        raise ValueError(msg)


class _Server(ThreadingHTTPServer):
    """Tracks its open connections so that close() can end handler threads stuck on a client
    that sends nothing; block_on_close (inherited, True) makes server_close() join them.
    Handles at most limits.max_connections at once: the next is answered 503 and closed."""

    daemon_threads = True
    allow_reuse_address = True
    app: HealthServer

    def __init__(
        self,
        address: tuple[str, int],
        app: HealthServer,
        ipv6: bool,
        limits: HttpLimits,
        hosts: HostPolicy,
    ) -> None:
        self.address_family = socket.AF_INET6 if ipv6 else socket.AF_INET
        self.request_queue_size = limits.backlog
        self.app = app
        self.limits = limits
        self.hosts = hosts
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        self.active = 0  # connections being handled (each by a thread)
        self.refused = 0  # connections answered 503 for want of room
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() also looks up the host's FQDN, which can stall offline.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            full = self.active >= self.limits.max_connections
            if full:
                self.refused += 1
            else:
                self.active += 1
                self.open_sockets.add(request)
        if full:
            refused = self.refused
            if refused & (refused - 1) == 0:  # the 1st, 2nd, 4th, 8th, ...: no log flood
                emit(
                    "http_connection_refused",
                    level="warning",
                    client=str(client_address[0]),
                    reason="too many connections",
                    max_connections=self.limits.max_connections,
                    refused_total=refused,
                )
            refuse_connection(request, json_body({"error": "too many connections"}))
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # the thread did not start: free its place
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _release(self, request: Any) -> None:
        with self.sockets_lock:
            if request in self.open_sockets:
                self.open_sockets.discard(request)
                self.active -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        emit("http_connection_error", level="debug", client=str(client_address[0]))

    def drop_connections(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by its handler
                sock.shutdown(socket.SHUT_RDWR)


class HealthServer:
    """The HTTP endpoint of one System, serving from a background thread once started.

    host/port: where to listen (port 0 picks a free one; `.port` tells which). A host that is
    not loopback needs a token (ValueError otherwise). allowed_hosts: the Host header names
    answered (None: loopback names and addresses plus the bound address; "*": any).
    limits: an HttpLimits (connections, request timeout, backlog, URL length). close() stops
    accepting, ends open connections, joins every server thread; idempotent. Usable as a
    context manager."""

    def __init__(
        self,
        system: System,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        *,
        allowed_hosts: Iterable[str] | None = None,
        limits: HttpLimits | None = None,
    ) -> None:
        check_bind(host, token)
        self.system = system
        self.token = token
        self.host = host.strip("[]")
        self.limits = limits or HttpLimits()
        hosts = HostPolicy(self.host, allowed_hosts)
        self._server = _Server((self.host, port), self, ":" in host, self.limits, hosts)
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:8123/ (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def active_connections(self) -> int:
        """Connections being handled now (at most limits.max_connections)."""
        return self._server.active

    @property
    def refused_connections(self) -> int:
        """Connections answered 503 so far because max_connections were being handled."""
        return self._server.refused

    def render_metrics(self) -> bytes:
        """The system's metrics, Prometheus text format 0.0.4 (what /metrics answers)."""
        return render_metrics(self.system)

    def start(self) -> HealthServer:
        """Serve from a background thread (once); returns self."""
        with self._lock:
            if self._closed:
                msg = "this server was closed"
                raise RuntimeError(msg)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._server.serve_forever,
                    kwargs={"poll_interval": 0.1},
                    name=f"hivekeeper-http-{self.port}",
                    daemon=True,
                )
                self._thread.start()
                emit("http_serving", url=self.url, root=self.system.spec.id, auth=bool(self.token))
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop serving and join the server's threads. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._server.shutdown()
            thread.join(timeout)
        self._server.drop_connections()
        self._server.server_close()  # joins the request threads
        emit("http_closed", url=self.url)

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve_http(
    system: System,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    *,
    allowed_hosts: Iterable[str] | None = None,
    limits: HttpLimits | None = None,
) -> HealthServer:
    """Start serving `system` over HTTP from a background thread; close() (or a with block)
    stops it. See the module docstring for routes, status codes, the token and Host rules
    and the limits."""
    server = HealthServer(
        system, host=host, port=port, token=token, allowed_hosts=allowed_hosts, limits=limits
    )
    return server.start()
