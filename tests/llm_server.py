"""A real HTTP server speaking OpenAI's chat-completions protocol, for the client tests.

It binds 127.0.0.1 on a free port, serves from one background thread (one more per
connection), answers from a queue of canned responses, and records every request. `stop()`
(or leaving the `with` block) closes the open connections and joins every thread it started.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["Canned", "FakeOpenAIServer", "RecordedRequest", "completion", "raw_json"]


def completion(
    content: str | None = "ok",
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
    model: str = "test-model",
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """A chat-completion body. Each tool call is `{"id", "name", "arguments"}`; `arguments`
    is sent as given when it is a str, else JSON-encoded (as OpenAI does)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": call["arguments"]
                    if isinstance(call["arguments"], str)
                    else json.dumps(call["arguments"]),
                },
            }
            for call in tool_calls
        ]
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def raw_json(template: Any, **fragments: str) -> str:
    """`template` as JSON text with raw text spliced in: every string value `"<<name>>"` is
    replaced by `fragments[name]` as it is, so a body can hold what `json.dumps` never writes
    (`1e400`, `NaN`, a lone `\\ud800` escape, nesting deeper than the encoder allows)."""
    text = json.dumps(template)
    for name, fragment in fragments.items():
        marker = json.dumps(f"<<{name}>>")
        if marker not in text:
            raise ValueError(f"no {marker} in the template")
        text = text.replace(marker, fragment)
    return text


@dataclass(frozen=True)
class Canned:
    """One answer. `body`: a dict/list is sent as JSON, a str/bytes as is. `hang`: answer only
    after `FakeOpenAIServer.release()` (or never, if the client goes away first). `delay`:
    seconds to wait before answering (cut short by `stop()`)."""

    status: int = 200
    body: dict[str, Any] | list[Any] | str | bytes = field(default_factory=completion)
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    json: Any  # the parsed body, or None when it was not JSON


class FakeOpenAIServer:
    """Answers POST .../chat/completions from `enqueue`d `Canned` responses, first in first
    out, then with `default`. Thread-safe. `client_disconnected` is set when a hanging
    request's client closes its connection."""

    def __init__(self, default: Canned | None = None) -> None:
        self.default = default or Canned()
        self.requests: list[RecordedRequest] = []
        self.client_disconnected = threading.Event()
        self._queue: deque[Canned] = deque()
        self._changed = threading.Condition()
        self._released = threading.Event()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="llm-test-server",
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections, and join every server thread."""
        self._stopping.set()
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        with self._changed:
            open_connections = list(self._connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()  # joins the per-connection threads

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def enqueue(self, *answers: Canned) -> None:
        with self._changed:
            self._queue.extend(answers)

    def release(self) -> None:
        """Let every hanging request (now and later) answer."""
        self._released.set()

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Block until `count` requests arrived; False if `timeout` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.requests) >= count, timeout)

    def _record(self, request: RecordedRequest) -> Canned:
        with self._changed:
            self.requests.append(request)
            answer = self._queue.popleft() if self._queue else self.default
            self._changed.notify_all()
            return answer

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._changed:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)
        if alive and self._stopping.is_set():  # accepted while stop() was closing the others
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins the connection threads
    block_on_close = True
    owner: FakeOpenAIServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real endpoints
    timeout = 30.0  # an idle connection never holds stop() longer than this
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, alive=True)

    def finish(self) -> None:
        self.server.owner._track(self.connection, alive=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on `requests` instead."""

    def do_POST(self) -> None:
        owner = self.server.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        answer = owner._record(
            RecordedRequest(
                "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, raw, parsed
            )
        )
        if answer.hang and not self._wait_for_release_or_hangup():
            self.close_connection = True
            return
        if answer.delay and owner._stopping.wait(answer.delay):
            self.close_connection = True
            return
        body = answer.body
        if isinstance(body, dict | list):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        self.send_response(answer.status)
        headers = {"Content-Type": "application/json", **answer.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _wait_for_release_or_hangup(self) -> bool:
        """True once released; False when the client hung up or the server is stopping."""
        owner = self.server.owner
        while not owner._released.is_set():
            if owner._stopping.is_set():
                return False
            readable, _, _ = select.select([self.connection], [], [], 0.02)
            if readable:
                try:
                    peeked = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    peeked = b""
                if not peeked:
                    owner.client_disconnected.set()
                    return False
                owner._released.wait(0.02)  # the client sent more bytes; not a hang-up
        return True
