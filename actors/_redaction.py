"""Redaction: secrets never reach the logs.

redact(value) returns a copy with the values of sensitive keys masked (names ending in
password, secret, token, api_key, ... and any names configured with add_sensitive_fields())
anywhere in dicts (keys included), lists, tuples, sets, bytes, dataclasses and pydantic models,
and header lists of (name, value) pairs; every string is scrubbed by redact_text(), which masks
secret-looking substrings (see actors._secret_patterns), so exception messages are covered.

It never raises: an object whose __repr__/__eq__/__hash__ raises is replaced by a placeholder,
a cycle by "<cycle>", and whatever lies deeper than _MAX_DEPTH by its (scrubbed) repr.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import fractions
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel

from ._secret_patterns import KEY_SUFFIX, MASK, Scrubber

__all__ = ["MASK", "add_sensitive_fields", "redact", "redact_text", "sensitive_fields"]

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
# Substrings that make a key sensitive wherever they sit in it (db_password_hash too).
_KEY_PARTS = ("password", "passwd", "secret", "api_key", "apikey", "private_key", "credential")
_MAX_DEPTH = 12
_CACHE_LIMIT = 4096
_CACHED_LENGTH = 256
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_SCALARS = frozenset({int, float, bool, type(None)})
_PLAIN = (
    bool,
    int,
    float,
    complex,
    decimal.Decimal,
    fractions.Fraction,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    Enum,
)

_fields: frozenset[str] = _DEFAULT_FIELDS
# (the text scrubber, its cache of results for short strings, which repeat: paths, ids, reasons);
# replaced as a whole when fields are added, so a result of the old regex is never served
_text: tuple[Scrubber, dict[str, str]] = (Scrubber(), {})
_guard = threading.Lock()
# key -> (sensitive?, the key as logged): keys repeat, so the decision is cached
_keys: dict[str, tuple[bool, str]] = {}


def add_sensitive_fields(names: Iterable[str]) -> None:
    """Also mask these field names (case-insensitive), process-wide: as dict keys, as header
    names, and in name=value / name: value / "name": "value" forms inside any text."""
    global _fields, _text  # noqa: PLW0603 - the one guarded place for this setting
    added = {n.lower() for n in names if isinstance(n, str) and n}
    with _guard:
        if added <= _fields:
            return
        _fields = _fields | added
        _text = (Scrubber(_fields - _DEFAULT_FIELDS), {})
        _keys.clear()


def sensitive_fields() -> frozenset[str]:
    return _fields


def redact_text(text: str) -> str:
    """text with its secret-looking substrings masked (text itself when there are none)."""
    if not isinstance(text, str):
        return _render(text)
    if len(text) < 4:  # shorter than the shortest secret form (pw=x)
        return text
    scrub, cache = _text
    cacheable = type(text) is str and len(text) <= _CACHED_LENGTH
    if cacheable:
        hit = cache.get(text)
        if hit is not None:
            return hit or text  # "" stands for "nothing to mask"
    try:
        cleaned = scrub(text)
    except Exception:  # noqa: BLE001 - never raise into the caller: fail closed
        return MASK
    if cacheable:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[text] = "" if cleaned is text else cleaned
    return cleaned


def redact(value: Any) -> Any:
    """A copy of value with secrets masked (values of plain types are returned as they are)."""
    return _walk(value, 0, set())


def _key(key: str) -> tuple[bool, str]:
    verdict = _keys.get(key)
    if verdict is None:
        low = key.lower()
        sensitive = (
            low in _fields
            or KEY_SUFFIX.search(low) is not None
            or any(part in low for part in _KEY_PARTS)
        )
        verdict = (sensitive, redact_text(key))
        if len(_keys) >= _CACHE_LIMIT:
            _keys.clear()
        _keys[key] = verdict
    return verdict


def _is_sensitive(key: object) -> bool:
    if isinstance(key, (bytes, bytearray)):
        key = bytes(key).decode("latin-1")
    return isinstance(key, str) and _key(key)[0]


def _is_header(pair: list[Any] | tuple[Any, ...]) -> bool:
    """(name, value) with a sensitive header or field name: ("Authorization", "Bearer x")."""
    if len(pair) != 2:
        return False
    name = pair[0]
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("latin-1")
    return isinstance(name, str) and _NAME.fullmatch(name) is not None and _key(name)[0]


def _render(value: object) -> str:
    """The scrubbed repr of value, or a placeholder when it has none."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__
        text = None
    if not isinstance(text, str):
        return f"<unrepresentable {type(value).__name__}>"
    return redact_text(str.__str__(text))


def _walk(value: Any, depth: int, path: set[int]) -> Any:
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if kind in _SCALARS:
        return value
    try:
        if kind is dict:
            if depth >= _MAX_DEPTH:
                return _render(value)
            return _nested(value, depth, path, _mapping)
        if value is None or isinstance(value, _PLAIN):
            return value
        if isinstance(value, str):
            return redact_text(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return _bytes(value)
        if isinstance(value, BaseException):
            return redact_text(f"{type(value).__name__}: {value}")
        if depth >= _MAX_DEPTH:
            return _render(value)
        return _nested(value, depth, path, _container)
    except Exception:  # noqa: BLE001 - redaction never raises: render what failed
        return _render(value)


def _nested(
    value: Any, depth: int, path: set[int], walk: Callable[[Any, int, set[int]], Any]
) -> Any:
    ident = id(value)
    if ident in path:
        return "<cycle>"
    path.add(ident)
    try:
        return walk(value, depth + 1, path)
    finally:
        path.discard(ident)


def _container(value: Any, depth: int, path: set[int]) -> Any:
    if isinstance(value, BaseModel):
        return _walk(value.model_dump(mode="json"), depth, path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _walk(fields, depth, path)
    if isinstance(value, Mapping):
        return _mapping(value, depth, path)
    if isinstance(value, (list, tuple)):
        if _is_header(value):
            pair = (_walk(value[0], depth, path), MASK)
            return list(pair) if isinstance(value, list) else pair
        items = [_walk(v, depth, path) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, (set, frozenset)):
        members = [_walk(v, depth, path) for v in value]
        try:
            return frozenset(members) if isinstance(value, frozenset) else set(members)
        except TypeError:  # a member became unhashable (a dataclass turned into a dict)
            return members
    return _other(value)


def _mapping(value: Mapping[Any, Any], depth: int, path: set[int]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for k, v in value.items():
        if isinstance(k, str):
            sensitive, shown = _key(k)
        else:
            sensitive, shown = _is_sensitive(k), _walk(k, depth, path)
            try:
                hash(shown)
            except TypeError:
                shown = _render(k)
        out[shown] = MASK if sensitive else _walk(v, depth, path)
    return out


def _bytes(value: bytes | bytearray | memoryview) -> Any:
    raw = bytes(value)
    text = raw.decode("utf-8", "surrogateescape")
    cleaned = redact_text(text)
    return value if cleaned is text else cleaned.encode("utf-8", "surrogateescape")


def _other(value: object) -> Any:
    """An object of no known shape: kept as it is unless its repr or str would show a secret
    (renderers print one or the other), then replaced by its scrubbed repr."""
    text = repr(value)
    if not isinstance(text, str):
        return _render(value)
    if redact_text(text) is not text:
        return redact_text(text)
    if type(value).__str__ is not object.__str__:
        shown = str(value)
        if not isinstance(shown, str) or redact_text(shown) is not shown:
            return _render(value)
    return value
