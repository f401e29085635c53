"""An opt-in HTTP endpoint to inspect a running tree, on the standard library only
(http.server.ThreadingHTTPServer in a background thread; no web framework).

    with serve_http(system) as server:          # 127.0.0.1, a free port
        print(server.url)                        # http://127.0.0.1:PORT/

Routes (GET only; any other method is answered 405 with `Allow: GET`, after the token check):
  /         the live tree page (HTML, self-contained; see supervisor._page)
  /health   system.health() as JSON
  /tree     system.health().tree() as JSON (nested nodes)
  /metrics  Prometheus text format 0.0.4 (see supervisor._metrics)
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

Each answered request is logged as a structlog event `http_request` (method, path, status,
client) on the logger "hivekeeper.http", instead of http.server's stderr access log.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import socket
import socketserver
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import structlog
from prometheus_client import generate_latest

from ._metrics import METRICS_CONTENT_TYPE, metrics_registry
from ._page import PAGE_CSP, PAGE_HTML

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ._system import System

__all__ = ["HealthServer", "serve_http"]

_log = structlog.get_logger("hivekeeper.http")

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_RUNNING = frozenset({"running", "degraded"})
_JSON = "application/json; charset=utf-8"
_HTML = "text/html; charset=utf-8"


def is_loopback(host: str) -> bool:
    """True for the loopback names and addresses (127.0.0.0/8, ::1)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _json_body(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


class _Server(ThreadingHTTPServer):
    """Tracks its open connections so that close() can end handler threads stuck on a client
    that sends nothing; block_on_close (inherited, True) makes server_close() join them."""

    daemon_threads = True
    allow_reuse_address = True
    app: HealthServer

    def __init__(self, address: tuple[str, int], app: HealthServer, ipv6: bool) -> None:
        self.address_family = socket.AF_INET6 if ipv6 else socket.AF_INET
        self.app = app
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() also looks up the host's FQDN, which can stall offline.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("http_connection_error", client=str(client_address[0]), exc_info=True)

    def drop_connections(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by its handler
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "hivekeeper"
    sys_version = ""
    timeout = 30.0  # seconds a connection may stay silent before it is dropped

    # -- routing ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        app = self.server.app
        url = urlsplit(self.path)
        if not self._authorised(app.token, url.path == "/", url.query):
            return
        headers: dict[str, str] = {}
        try:
            if url.path == "/":
                status, body, ctype = HTTPStatus.OK, PAGE_HTML, _HTML
                headers["Content-Security-Policy"] = PAGE_CSP
            elif url.path in ("/health", "/tree"):
                health = app.system.health()
                running = health.state in _RUNNING
                status = HTTPStatus.OK if running else HTTPStatus.SERVICE_UNAVAILABLE
                doc = health.model_dump(mode="json") if url.path == "/health" else health.tree()
                body, ctype = _json_body(doc), _JSON
            elif url.path == "/metrics":
                status, body, ctype = HTTPStatus.OK, app.render_metrics(), METRICS_CONTENT_TYPE
            else:
                status, ctype = HTTPStatus.NOT_FOUND, _JSON
                body = _json_body({"error": "not found", "path": url.path})
        except Exception:  # noqa: BLE001 - a failing request must not kill the server thread
            _log.exception("http_handler_failed", path=url.path)
            status, ctype = HTTPStatus.INTERNAL_SERVER_ERROR, _JSON
            body = _json_body({"error": "internal error"})
        self._send(status, body, ctype, headers)

    def _not_allowed(self) -> None:
        self._discard_body()
        if not self._authorised(self.server.app.token, False, ""):
            return
        self._send_json(
            HTTPStatus.METHOD_NOT_ALLOWED,
            {"error": "method not allowed", "method": self.command, "allow": ["GET"]},
            {"Allow": "GET"},
        )

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _not_allowed
    do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _discard_body(self, limit: int = 1 << 20) -> None:
        """Read a small request body we do not use, so that closing the connection does not
        reset it before the client has read our answer."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if 0 < length <= limit:
            self.rfile.read(length)

    # -- auth ------------------------------------------------------------------------------

    def _authorised(self, token: str | None, is_page: bool, query: str) -> bool:
        if token is None:
            return True
        expected = token.encode()
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return True
        if is_page:
            for candidate in parse_qs(query).get("token", []):
                if hmac.compare_digest(candidate.encode(), expected):
                    return True
        self._send_json(
            HTTPStatus.UNAUTHORIZED,
            {"error": "unauthorised: send Authorization: Bearer <token>"},
            {"WWW-Authenticate": 'Bearer realm="hivekeeper"'},
        )
        return False

    # -- answering -------------------------------------------------------------------------

    def _send_json(
        self, status: HTTPStatus, doc: Any, headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, _json_body(doc), _JSON, headers)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- logging (structlog, never stderr) ---------------------------------------------------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if str(code).isdigit() else 0
        level = "warning" if status == 401 else "error" if status >= 500 else "debug"
        getattr(_log, level)(
            "http_request",
            method=self.command,
            path=urlsplit(self.path or "").path,
            status=status,
            client=self.client_address[0],
        )

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("http_server_message", message=format % args, client=self.client_address[0])


class HealthServer:
    """The HTTP endpoint of one System, serving from a background thread once started.

    host/port: where to listen (port 0 picks a free one; `.port` tells which). A host that is
    not loopback needs a token (ValueError otherwise). close() stops accepting, ends open
    connections, joins every server thread; idempotent. Usable as a context manager."""

    def __init__(
        self,
        system: System,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
    ) -> None:
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
        self.system = system
        self.token = token
        self._registry: CollectorRegistry = metrics_registry(system)
        self._server = _Server((host.strip("[]"), port), self, ipv6=":" in host)
        self.host = host.strip("[]")
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:8123/ (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def render_metrics(self) -> bytes:
        """The system's metrics, Prometheus text format 0.0.4 (what /metrics answers)."""
        return generate_latest(self._registry)

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
                _log.info(
                    "http_serving", url=self.url, root=self.system.spec.id, auth=bool(self.token)
                )
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
        _log.info("http_closed", url=self.url)

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
) -> HealthServer:
    """Start serving `system` over HTTP from a background thread; close() (or a with block)
    stops it. See the module docstring for routes, status codes and the token rules."""
    return HealthServer(system, host=host, port=port, token=token).start()
