"""The request handler of the HTTP endpoint (see supervisor.inspect._http for routes and rules): the
guard (deadline, URL length, Host), the token check, the routes, JSON answers and logging."""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from .._events import emit
from ._http_guard import DeadlineReader, drain_unread
from ._metrics import METRICS_CONTENT_TYPE
from ._page import PAGE_CSP, PAGE_HTML

if TYPE_CHECKING:
    from ._http import _Server

__all__ = ["JSON_TYPE", "Handler", "json_body"]

_RUNNING = frozenset({"running", "degraded"})
JSON_TYPE = "application/json; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_WARN = frozenset({401, 403, 421})


def json_body(value: Any) -> bytes:
    """JSON that no browser reads as markup (<, > and & escaped), always encodable: a lone
    surrogate becomes its JSON escape (\\udXXX), so the body stays valid JSON and UTF-8."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode("utf-8", "backslashreplace")


class Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "hivekeeper"
    sys_version = ""
    # answers to unparseable requests carry a status line (http.server assumes HTTP/0.9)
    default_request_version = "HTTP/1.0"

    # -- the guard -------------------------------------------------------------------------

    def setup(self) -> None:
        limits = self.server.limits
        # what logging and error answers read before the request line is parsed (if ever)
        self.command, self.path, self.requestline = "", "", ""
        self.request_version = self.default_request_version
        self.url = SplitResult("", "", "", "", "")
        self.answered = False
        super().setup()
        self.rfile.close()
        deadline = time.monotonic() + limits.request_timeout
        self.reader = DeadlineReader(self.connection, deadline)
        self.rfile = io.BufferedReader(self.reader)

    def handle(self) -> None:
        super().handle()
        if self.reader.timed_out and not self.answered:
            with contextlib.suppress(OSError):
                self.close_connection = True
                self._send_json(HTTPStatus.REQUEST_TIMEOUT, {"error": "request timed out"})

    def finish(self) -> None:
        super().finish()
        drain_unread(self.connection)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if len(self.path) > self.server.limits.max_url:
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return False
        try:
            self.url = urlsplit(self.path)
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "malformed request target")
            return False
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            self.send_error(HTTPStatus.BAD_REQUEST, "more than one Host header")
            return False
        if not self.server.hosts.allows(hosts[0] if hosts else None):
            self.close_connection = True
            self._send_json(
                HTTPStatus.MISDIRECTED_REQUEST,
                {"error": "misdirected request: this server does not answer for that Host"},
            )
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (400 malformed, 414, 431, 501, ...) as JSON answers."""
        try:
            status = HTTPStatus(code)
        except ValueError:
            status = HTTPStatus.BAD_REQUEST
        self.close_connection = True
        self._send_json(status, {"error": message or status.phrase}, {"Connection": "close"})

    # -- routing ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        app = self.server.app
        url = self.url
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
                body, ctype = json_body(doc), JSON_TYPE
            elif url.path == "/metrics":
                status, body, ctype = HTTPStatus.OK, app.render_metrics(), METRICS_CONTENT_TYPE
            else:
                status, ctype = HTTPStatus.NOT_FOUND, JSON_TYPE
                body = json_body({"error": "not found", "path": url.path})
        except Exception as exc:  # noqa: BLE001 - a failing request must not kill the server thread
            emit("http_handler_failed", level="error", path=url.path, error=type(exc).__name__)
            status, ctype = HTTPStatus.INTERNAL_SERVER_ERROR, JSON_TYPE
            body = json_body({"error": "internal error"})
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
        self._send(status, json_body(doc), JSON_TYPE, headers)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.answered = True
        # each write of the answer gets request_timeout (reads set their own, shorter, timeouts)
        self.connection.settimeout(self.server.limits.request_timeout)
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

    # -- logging (events, never stderr) ----------------------------------------------------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if str(code).isdigit() else 0
        level = "warning" if status in _WARN else "error" if status >= 500 else "debug"
        emit(
            "http_request",
            level=level,
            method=self.command or None,
            path=self.url.path[:200],
            status=status,
            client=self.client_address[0],
        )

    def log_message(self, format: str, *args: Any) -> None:
        emit(
            "http_server_message",
            level="debug",
            message=(format % args)[:500],
            client=self.client_address[0],
        )
