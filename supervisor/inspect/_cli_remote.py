"""Reading a running system's HTTP endpoint for `hivekeeper status` and `hivekeeper tree`.

A URL ending in /health, /tree or /metrics is read as the endpoint's base URL. A hivekeeper
endpoint answers 200 (running, healthy or degraded) or 503 (starting, failed, stopping,
stopped) with a health document; anything else (unreachable, 401, any other status, a body
that is not such a document) is a CliError: exit code 2.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ._cli_errors import CliError

__all__ = ["base_url", "exit_code", "fetch"]

_ROUTES = ("/health", "/tree", "/metrics")


def base_url(url: str) -> str:
    """The endpoint's base URL: a URL of one of its routes (…/health) counts as its base;
    query and fragment are dropped."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"expected an http:// URL such as http://127.0.0.1:8321, got {url!r}")
    path = parts.path.rstrip("/")
    for route in _ROUTES:
        if path.endswith(route):
            path = path[: -len(route)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def fetch(url: str, route: str, key: str, token: str | None) -> tuple[int, dict[str, Any]]:
    """GET base_url(url) + route: (HTTP status, its JSON document). The document must be a
    JSON object holding `key` and the status 200 or 503 (what a hivekeeper endpoint answers
    for a running or a stopped/failed tree); anything else is a CliError (exit 2)."""
    where = base_url(url) + route
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(where, headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {where}: {type(exc).__name__}: {exc}") from exc
    code = response.status_code
    if code == 401:
        raise CliError(f"{where}: HTTP 401 unauthorized (give --token)")
    if code not in (200, 503):
        raise CliError(f"{where}: HTTP {code} {response.reason_phrase}".rstrip())
    try:
        doc = response.json()
    except ValueError as exc:
        raise CliError(f"{where} did not answer JSON (HTTP {code})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
        raise CliError(f"{where} is not a hivekeeper health endpoint (HTTP {code}, no {key!r})")
    return code, doc


def exit_code(code: int, doc: dict[str, Any]) -> int:
    return 0 if code == 200 and doc.get("healthy") is True else 1
