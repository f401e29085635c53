"""open_store: a Store from what a user passes to start(tree, store=...): a Store object as it
is, or a URL naming one. Only SQLite is shipped:

    sqlite:///relative/path.db      (relative to the current directory)
    sqlite:////absolute/path.db
    sqlite:///state.db?synchronous=NORMAL"""

from __future__ import annotations

import urllib.parse

from ._protocol import Store
from ._sqlite import SQLiteStore

__all__ = ["open_store"]

_SQLITE = "sqlite:///"
_OPTIONS = {"synchronous": ("FULL", "NORMAL")}


def open_store(url_or_store: Store | str) -> Store:
    """The store itself if given one; a new SQLiteStore for a "sqlite:///path" URL.
    TypeError for anything else than a Store or a str; ValueError for a malformed URL."""
    if isinstance(url_or_store, str):
        return _open_url(url_or_store)
    if isinstance(url_or_store, Store):
        return url_or_store
    raise TypeError(
        f"store must be a Store object or a URL like 'sqlite:///path/to/state.db', "
        f"got {type(url_or_store).__name__}"
    )


def _open_url(url: str) -> Store:
    if not url.startswith(_SQLITE):
        scheme = url.split(":", 1)[0] if ":" in url else None
        hint = (
            f"unsupported store scheme {scheme!r}"
            if scheme and not url.startswith("sqlite:")
            else "malformed SQLite URL"
        )
        raise ValueError(
            f"{hint} in {url!r}: expected 'sqlite:///relative/path.db' or "
            f"'sqlite:////absolute/path.db'"
        )
    path, _, query = url[len(_SQLITE) :].partition("?")
    if not path:
        raise ValueError(f"no database path in store URL {url!r}")
    synchronous = "FULL"
    for name, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
        if name not in _OPTIONS:
            raise ValueError(
                f"unknown option {name!r} in store URL {url!r}: known {list(_OPTIONS)}"
            )
        value = values[-1].upper()
        if value not in _OPTIONS[name]:
            raise ValueError(f"{name}={values[-1]!r} in store URL {url!r}: one of {_OPTIONS[name]}")
        synchronous = value
    return SQLiteStore(path, synchronous="NORMAL" if synchronous == "NORMAL" else "FULL")
