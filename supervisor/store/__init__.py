"""Durable store: mailboxes, agent snapshots and dead letters that survive the process.

The lowest layer of the runtime: it imports nothing else from supervisor. `Store` is the
protocol the runtime uses (a second store, e.g. Redis or Postgres, implements it too);
`SQLiteStore` is the embedded default (WAL, group commit); `open_store` makes one from a
"sqlite:///path.db" URL or passes a Store through."""

from __future__ import annotations

from ._protocol import (
    Appended,
    PendingMessage,
    Snapshot,
    Store,
    StoreClosedError,
    StoredDeadLetter,
    StoreError,
    StoreOpenError,
    StoreSchemaError,
    StoreStats,
    StoreTimeoutError,
    UnknownMessageError,
)
from ._sqlite import SCHEMA_VERSION, SQLiteStore
from ._url import open_store

__all__ = [
    "SCHEMA_VERSION",
    "Appended",
    "PendingMessage",
    "SQLiteStore",
    "Snapshot",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreOpenError",
    "StoreSchemaError",
    "StoreStats",
    "StoreTimeoutError",
    "StoredDeadLetter",
    "UnknownMessageError",
    "open_store",
]
