"""The HTTP endpoint's guard rails, before any route runs: connection and time limits, and the
Host check that keeps DNS rebinding from reading a tokenless loopback endpoint.

    HttpLimits(max_connections=32, request_timeout=5.0, backlog=128, max_url=8192)

max_connections: connections handled at once (one thread each); a connection beyond it is
answered 503 at once and closed, so idle or slow clients cannot pile up threads.
request_timeout: seconds a client has to send its whole request (line, headers, body), from
the moment it is accepted; also the limit on each write of the answer. A client that is
slower (or sends nothing) is answered 408 and closed.
backlog: the listen queue. max_url: the longest request target accepted (414 beyond).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ANY_HOST",
    "LOOPBACK_NAMES",
    "DeadlineReader",
    "HostPolicy",
    "HttpLimits",
    "drain_unread",
    "is_loopback",
    "refuse_connection",
]

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
ANY_HOST = "*"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_connections: int = 32
    request_timeout: float = 5.0
    backlog: int = 128
    max_url: int = 8192

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            msg = f"max_connections must be at least 1, not {self.max_connections}"
            raise ValueError(msg)
        if not 0 < self.request_timeout <= 3600:
            msg = (
                "request_timeout must be a positive number of seconds up to 3600, not "
                f"{self.request_timeout}"
            )
            raise ValueError(msg)
        if self.backlog < 1 or self.max_url < 16:
            msg = f"backlog must be >= 1 and max_url >= 16, got {self.backlog}, {self.max_url}"
            raise ValueError(msg)


def is_loopback(host: str) -> bool:
    """True for the loopback names and addresses (127.0.0.0/8, ::1)."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, without port or brackets, lower case: "[::1]:80" -> "::1"."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


class HostPolicy:
    """Which Host headers a server answers. allowed None: the loopback names and addresses and
    the bound address, except on a wildcard bind (0.0.0.0, ::), which needs a token and where
    any Host is accepted. "*" in allowed accepts any Host. A request without a Host header
    (HTTP/1.0) is accepted: browsers always send one."""

    def __init__(self, bound: str, allowed: Iterable[str] | None) -> None:
        if allowed is None:
            self.any = _is_wildcard(bound)
            self.names = frozenset({host_name(bound)})
            self.loopback = True
        else:
            names = {host_name(h) if h != ANY_HOST else ANY_HOST for h in allowed}
            self.any = ANY_HOST in names
            self.names = frozenset(names - {ANY_HOST})
            self.loopback = False

    def allows(self, header: str | None) -> bool:
        if header is None or self.any:
            return True
        name = host_name(header)
        return name in self.names or (self.loopback and is_loopback(name))


class DeadlineReader(io.RawIOBase):
    """The raw stream under a handler's rfile: every read gets only the time left until the
    request's deadline, so a client trickling one byte at a time cannot hold its thread past
    it. timed_out tells the handler to answer 408."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self.deadline = deadline
        self.timed_out = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.timed_out = True
            raise TimeoutError("request deadline passed")
        self._sock.settimeout(left)
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            self.timed_out = True
            raise


def drain_unread(sock: socket.socket, limit: int = 1 << 20) -> None:
    """Discard what the client sent that was never read (the rest of a refused request), so
    that closing the socket does not reset the connection before the client has read the
    answer. Never blocks: only what has already arrived is read."""
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        while limit > 0:
            chunk = sock.recv(min(limit, 65536))
            if not chunk:
                return
            limit -= len(chunk)


def refuse_connection(sock: socket.socket, body: bytes) -> None:
    """Answer 503 on a connection the server has no room for, without blocking the accepting
    thread (a fresh socket's send buffer takes this small answer at once), then close it."""
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(head + body)
        drain_unread(sock)
        sock.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        sock.close()
