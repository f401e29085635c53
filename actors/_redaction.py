"""Redaction: secrets never reach the logs.

Masks values of sensitive keys (api_key, authorization, password, token, secret, ... and any
names configured with add_sensitive_fields()) anywhere in nested dicts, lists, tuples and
pydantic models, and scrubs secret-looking substrings inside strings (bearer tokens, API
keys such as sk-..., key=value pairs for sensitive names), which covers exception messages.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

__all__ = ["MASK", "add_sensitive_fields", "redact", "redact_text", "sensitive_fields"]

MASK = "***"
_DEFAULT_FIELDS = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "authorization",
        "proxy-authorization",
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "bearer",
        "cookie",
        "set-cookie",
        "private_key",
        "session",
    }
)
_fields: frozenset[str] = _DEFAULT_FIELDS
_guard = threading.Lock()

_SECRET_IN_TEXT = re.compile(
    r"(?i)(?P<bearer>\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(?:sk|pk|rk)-(?:[A-Za-z0-9_-]+-)?[A-Za-z0-9_-]{16,}"
    r"|(?P<kv>\b(?:api[_-]?key|password|passwd|secret|token|access[_-]?token|client[_-]?secret)"
    r"[\"']?\s*[=:]\s*[\"']?)[^\s\"',;&}]+"
)


_verdicts: dict[str, bool] = {}  # key -> sensitive? (keys repeat: cache the decision)


def add_sensitive_fields(names: Iterable[str]) -> None:
    """Also mask the values of these field names (case-insensitive), process-wide."""
    global _fields  # noqa: PLW0603 - the one guarded place for this setting
    with _guard:
        _fields = _fields | {n.lower() for n in names}
        _verdicts.clear()


def sensitive_fields() -> frozenset[str]:
    return _fields


def _is_sensitive(key: object) -> bool:
    if not isinstance(key, str):
        return False
    verdict = _verdicts.get(key)
    if verdict is None:
        k = key.lower()
        verdict = k in _fields or any(
            part in k for part in ("password", "secret", "api_key", "apikey", "token")
        )
        if len(_verdicts) < 10_000:
            _verdicts[key] = verdict
    return verdict


def _scrub(match: re.Match[str]) -> str:
    prefix = match.group("bearer") or match.group("kv") or ""
    return f"{prefix}{MASK}"


_HINTS = ("bearer", "k-", "key", "pass", "secret", "token")


def _may_hold_secret(text: str) -> bool:
    low = text.lower()
    return any(h in low for h in _HINTS)


def redact_text(text: str) -> str:
    """Mask secret-looking substrings of a string."""
    return _SECRET_IN_TEXT.sub(_scrub, text) if _may_hold_secret(text) else text


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of value with secrets masked (values of plain types are returned as they are)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if _depth > 12:
        return value
    if isinstance(value, BaseModel):
        return redact(value.model_dump(mode="json"), _depth + 1)
    if isinstance(value, Mapping):
        return {k: (MASK if _is_sensitive(k) else redact(v, _depth + 1)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return (
            type(value)(redact(v, _depth + 1) for v in value)
            if isinstance(value, list)
            else tuple(redact(v, _depth + 1) for v in value)
        )
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value
