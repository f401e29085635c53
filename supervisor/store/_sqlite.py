"""SQLiteStore: the embedded default store. One SQLite file in WAL mode; writes go through the
group committer (one writer thread, one transaction and one fsync per batch); reads use a
small pool of read-only connections, each read one WAL snapshot, so they never wait for a
commit and always see every write that has returned.

synchronous="FULL" (the default) fsyncs the WAL on every commit: a write that returned
survives power loss. "NORMAL" fsyncs only at checkpoints: a write that returned survives the
process being killed, but the last commits may be lost on power loss or an OS crash. Either
way a kill -9 at any moment leaves the database consistent."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import structlog

from . import _protocol as p
from ._group_commit import GroupCommitter, PausedWriter

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

SCHEMA_VERSION = 1  # PRAGMA user_version of a database this code writes
_log = structlog.get_logger("hivekeeper.store")
_SCHEMA = """
CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT NOT NULL,
    payload BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, idempotency_key TEXT,
    accepted_at REAL NOT NULL);
CREATE INDEX messages_by_agent ON messages (agent, seq);
CREATE UNIQUE INDEX messages_by_key ON messages (agent, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE seen_keys (agent TEXT NOT NULL, idempotency_key TEXT NOT NULL,
    seq INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (agent, idempotency_key))
    WITHOUT ROWID;
CREATE INDEX seen_keys_by_age ON seen_keys (agent, n);
CREATE TABLE snapshots (agent TEXT PRIMARY KEY, data BLOB NOT NULL, saved_at REAL NOT NULL,
    version INTEGER NOT NULL);
CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT NOT NULL,
    payload BLOB NOT NULL, reason TEXT NOT NULL, recorded_at REAL NOT NULL);
CREATE INDEX dead_letters_by_agent ON dead_letters (agent, id);
PRAGMA user_version = 1;
"""
# messages.seq: AUTOINCREMENT, so never reused, even once the last message is acknowledged.
# seen_keys: keys of handled messages; n numbers them per agent, so the oldest can be trimmed.
_SAVE_SNAPSHOT = (
    "INSERT INTO snapshots (agent, data, saved_at, version) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (agent) DO UPDATE SET data = excluded.data, saved_at = excluded.saved_at, "
    "version = snapshots.version + 1"
)


class SQLiteStore:
    """A Store in one SQLite file (the contract of each method is on Store). path: the
    database file (its directory must exist; the file is created). synchronous: "FULL"
    (power-loss safe) or "NORMAL" (process-crash safe). seen_keys_per_agent: idempotency keys
    of handled messages remembered per agent (the oldest are forgotten first). busy_timeout:
    seconds to wait for another process's lock."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        seen_keys_per_agent: int = 10_000,
        busy_timeout: float = 5.0,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self._keep_keys = p.check_int(seen_keys_per_agent, "seen_keys_per_agent", 1)
        self._timeout = float(busy_timeout)
        self._path = _check_path(Path(path))
        self._synchronous: str = synchronous
        self._closed = False
        self._readers: list[sqlite3.Connection] = []  # idle read connections
        self._readers_lock = threading.Lock()
        conn = self._connect()
        try:
            created = _prepare(conn, self._path, synchronous)
        except BaseException:
            conn.close()
            raise
        self._writer = GroupCommitter(conn, name=f"hivekeeper-store-writer:{self._path.name}")
        _log.info("store.opened", path=str(self._path), synchronous=synchronous, created=created)

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self._path)!r}, synchronous={self._synchronous!r})"

    # mailbox

    def append(
        self,
        agent: str,
        payload: bytes,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> p.Appended:
        agent, data, now = p.check_agent(agent), p.check_payload(payload), time.time()
        key = p.check_key(idempotency_key)

        def op(conn: sqlite3.Connection) -> p.Appended:
            if key is not None:
                for table in ("messages", "seen_keys"):
                    row = conn.execute(
                        f"SELECT seq FROM {table} WHERE agent = ? AND idempotency_key = ?",
                        (agent, key),
                    ).fetchone()
                    if row is not None:
                        return p.Appended(row[0], duplicate=True)
            cur = conn.execute(
                "INSERT INTO messages (agent, payload, idempotency_key, accepted_at) "
                "VALUES (?, ?, ?, ?)",
                (agent, data, key, now),
            )
            assert cur.lastrowid is not None  # an INSERT into a rowid table always has one
            return p.Appended(cur.lastrowid)

        return self._writer.submit(op, f"append for {agent!r}", timeout)

    def flush(self) -> None:
        self._writer.submit(lambda conn: None, "flush")

    def pending(
        self, agent: str, *, after: int = 0, limit: int | None = None
    ) -> list[p.PendingMessage]:
        agent, after = p.check_agent(agent), p.check_int(after, "after", 0)
        most = -1 if limit is None else p.check_int(limit, "limit", 0)
        sql = "SELECT seq, payload, attempts, idempotency_key, accepted_at FROM messages "
        sql += "WHERE agent = ? AND seq > ? ORDER BY seq LIMIT ?"
        return [p.PendingMessage(*r) for r in self._rows("read pending", sql, agent, after, most)]

    def pending_count(self, agent: str) -> int:
        sql = "SELECT COUNT(*) FROM messages WHERE agent = ?"
        return int(self._rows("count pending", sql, p.check_agent(agent))[0][0])

    def pending_counts(self) -> dict[str, int]:
        sql = "SELECT agent, COUNT(*) FROM messages GROUP BY agent ORDER BY agent"
        return {agent: int(n) for agent, n in self._rows("count pending", sql)}

    def begin_attempt(self, agent: str, seq: int) -> int:
        agent, seq = p.check_agent(agent), p.check_int(seq, "seq", 1)
        sql = "UPDATE messages SET attempts = attempts + 1 WHERE seq = ? AND agent = ? "
        sql += "RETURNING attempts"

        def op(conn: sqlite3.Connection) -> int:
            rows = conn.execute(sql, (seq, agent)).fetchall()
            if not rows:
                raise p.UnknownMessageError(agent, seq)
            return int(rows[0][0])

        return self._writer.submit(op, f"begin attempt of message {seq} for {agent!r}")

    def begin_attempts(self, agent: str, seqs: Sequence[int]) -> dict[int, int]:
        """begin_attempt for each of `seqs` in one write: {seq: attempts}; a seq no longer
        pending is left out (it was acknowledged meanwhile)."""
        agent = p.check_agent(agent)
        wanted = [p.check_int(seq, "seq", 1) for seq in seqs]
        sql = "UPDATE messages SET attempts = attempts + 1 WHERE seq = ? AND agent = ? "
        sql += "RETURNING attempts"

        def op(conn: sqlite3.Connection) -> dict[int, int]:
            got: dict[int, int] = {}
            for seq in wanted:
                rows = conn.execute(sql, (seq, agent)).fetchall()
                if rows:
                    got[seq] = int(rows[0][0])
            return got

        return self._writer.submit(op, f"begin attempts of {len(wanted)} messages for {agent!r}")

    def ack(
        self, agent: str, seq: int, *, snapshot: bytes | None = None, wait: bool = True
    ) -> None:
        agent, seq = p.check_agent(agent), p.check_int(seq, "seq", 1)
        state = None if snapshot is None else p.check_payload(snapshot, "snapshot")
        now, keep = time.time(), self._keep_keys

        def op(conn: sqlite3.Connection) -> None:
            rows = conn.execute(
                "DELETE FROM messages WHERE seq = ? AND agent = ? RETURNING idempotency_key",
                (seq, agent),
            ).fetchall()
            if not rows:
                raise p.UnknownMessageError(agent, seq)
            if (key := rows[0][0]) is not None:
                n = conn.execute(
                    "SELECT COALESCE(MAX(n), 0) + 1 FROM seen_keys WHERE agent = ?", (agent,)
                ).fetchone()[0]
                conn.execute(
                    "INSERT OR REPLACE INTO seen_keys VALUES (?, ?, ?, ?)", (agent, key, seq, n)
                )
                conn.execute("DELETE FROM seen_keys WHERE agent = ? AND n <= ?", (agent, n - keep))
            if state is not None:
                conn.execute(_SAVE_SNAPSHOT, (agent, state, now))

        self._write(op, f"ack of message {seq} for {agent!r}", wait)

    # state

    def save_snapshot(self, agent: str, data: bytes, *, wait: bool = True) -> None:
        agent, state, now = p.check_agent(agent), p.check_payload(data, "data"), time.time()
        self._write(
            lambda conn: conn.execute(_SAVE_SNAPSHOT, (agent, state, now)).close(),
            f"save snapshot of {agent!r}",
            wait,
        )

    def load_snapshot(self, agent: str) -> p.Snapshot | None:
        sql = "SELECT data, saved_at, version FROM snapshots WHERE agent = ?"
        rows = self._rows("load a snapshot", sql, p.check_agent(agent))
        return p.Snapshot(*rows[0]) if rows else None

    # dead letters

    def add_dead_letter(
        self, agent: str, payload: bytes, reason: str, *, wait: bool = True
    ) -> int | None:
        agent, data = p.check_agent(agent), p.check_payload(payload)
        reason, now = p.check_text(reason, "reason"), time.time()
        sql = "INSERT INTO dead_letters (agent, payload, reason, recorded_at) VALUES (?, ?, ?, ?)"

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(sql, (agent, data, reason, now))
            assert cur.lastrowid is not None  # an INSERT into a rowid table always has one
            return cur.lastrowid

        if not wait:
            self._writer.submit_nowait(op, f"dead letter for {agent!r}")
            return None
        return self._writer.submit(op, f"dead letter for {agent!r}")

    def dead_letters(self, agent: str | None = None, limit: int = 100) -> list[p.StoredDeadLetter]:
        most = p.check_int(limit, "limit", 0)
        where, args = ("", ()) if agent is None else ("WHERE agent = ?", (p.check_agent(agent),))
        sql = f"SELECT id, agent, payload, reason, recorded_at FROM dead_letters {where} "
        rows = self._rows("read dead letters", sql + "ORDER BY id DESC LIMIT ?", *args, most)
        return [p.StoredDeadLetter(*row) for row in reversed(rows)]

    def dead_letter_count(self) -> int:
        return int(self._rows("count dead letters", "SELECT COUNT(*) FROM dead_letters")[0][0])

    # lifecycle

    def stats(self) -> p.StoreStats:
        c = self._writer.counters
        with c.lock:
            counts = (c.commits, c.operations, c.failed, c.batches, c.max_batch)
            window = sorted(c.latencies_ms)
        p50 = statistics.median(window) if window else 0.0
        p99 = window[min(len(window) - 1, int(len(window) * 0.99))] if window else 0.0
        return p.StoreStats(str(self._path), self._synchronous, *counts, p50, p99, len(window))

    def close(self) -> None:
        with self._readers_lock:
            already, self._closed = self._closed, True
            idle, self._readers = self._readers, []
        self._writer.close()
        for conn in idle:
            conn.close()
        if not already:
            s = self.stats()
            _log.info(
                "store.closed", path=str(self._path), commits=s.commits, operations=s.operations
            )

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write(self, op: Callable[[sqlite3.Connection], object], what: str, wait: bool) -> None:
        if wait:
            self._writer.submit(op, what)
        else:
            self._writer.submit_nowait(op, what)

    def _pause(self) -> contextlib.AbstractContextManager[PausedWriter]:
        """Test hook: `with store._pause() as w:` the writer starts no transaction, so writes
        submitted meanwhile (w.wait_queued(n, timeout) waits for n of them) commit as one."""
        return self._writer.pause()

    # connections

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise p.StoreOpenError(f"cannot open store {str(self._path)!r}: {exc}") from exc

    def _rows(self, what: str, sql: str, *args: object) -> list[Any]:
        """All rows of one query, on one read connection (one consistent WAL snapshot)."""
        with self._reader(what) as conn:
            return conn.execute(sql, args).fetchall()

    @contextlib.contextmanager
    def _reader(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._readers_lock:
            if self._closed:
                raise p.StoreClosedError(f"store is closed: cannot {what}")
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
        try:
            yield conn
        except sqlite3.Error as exc:
            raise p.StoreError(f"could not {what} in {str(self._path)!r}: {exc}") from exc
        finally:
            with self._readers_lock:
                if self._closed:
                    conn.close()
                else:
                    self._readers.append(conn)


def _check_path(path: Path) -> Path:
    path = path.expanduser().absolute()
    problem = "no directory " + repr(str(path.parent)) if not path.parent.is_dir() else None
    if path.is_dir():
        problem = "it is a directory"
    if problem is not None:
        raise p.StoreOpenError(f"cannot open store {str(path)!r}: {problem}")
    return path


def _prepare(conn: sqlite3.Connection, path: Path, synchronous: str) -> bool:
    """WAL mode, the synchronous mode, and the schema (created if the file is new). True if
    it was created. Refuses a database of a newer schema, or one that is not a store."""
    where = f"store {str(path)!r}"
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise p.StoreOpenError(f"{where}: WAL mode is not available (journal_mode={mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("BEGIN IMMEDIATE")  # another process may be creating it right now
        try:
            created = _check_schema(conn, where)
            if created:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise p.StoreOpenError(f"cannot open {where}: {type(exc).__name__}: {exc}") from exc
    return created


def _check_schema(conn: sqlite3.Connection, where: str) -> bool:
    """True if the database is empty (the schema is to be created)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise p.StoreSchemaError(
            f"{where} has schema version {version}, newer than this hivekeeper's "
            f"({SCHEMA_VERSION}): upgrade hivekeeper to open it"
        )
    if version == SCHEMA_VERSION:
        return False
    tables = conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
    if version != 0 or tables:
        raise p.StoreOpenError(f"{where} is not a hivekeeper store (user_version={version})")
    return True
