"""Group commit: one writer thread owns the write connection; callers hand it write
operations and block until theirs is committed.

The writer takes everything queued (up to MAX_BATCH), runs it in ONE transaction, each
operation inside its own SAVEPOINT, commits (one fsync for the whole batch) and then wakes
every caller of the batch. An operation that raises is rolled back to its savepoint and fails
only its own caller; a failed BEGIN or COMMIT (or an error that made SQLite abandon the
transaction) fails every operation of that batch, and none of them is committed."""

from __future__ import annotations

import collections
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import structlog

from ._protocol import StoreClosedError, StoreError, StoreTimeoutError

__all__ = ["MAX_BATCH", "GroupCommitter", "PausedWriter", "WriterCounters"]

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], T]

MAX_BATCH = 2048  # writes in one transaction at most: keeps one commit's latency bounded
LATENCY_WINDOW = 1024  # commits whose latency stats() reports
_log = structlog.get_logger("hivekeeper.store")


class _Job(Generic[T]):
    """One submitted write. `done` is set once, after its batch committed or failed; then
    exactly one of `result` (when `error` is None) and `error` holds the outcome."""

    __slots__ = ("detached", "done", "error", "fn", "result", "what")

    def __init__(self, fn: Operation[T], what: str, detached: bool = False) -> None:
        self.fn = fn
        self.what = what  # what the write does, for error messages ("append for 'root/a'")
        self.detached = detached  # nobody waits for it: its failure is logged
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class WriterCounters:
    """Counters of the writer, changed only by the writer thread under `lock`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches = 0
        self.commits = 0
        self.operations = 0
        self.failed = 0
        self.max_batch = 0
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)


class PausedWriter:
    """Handle of a paused writer (tests): lets a test wait until n writes are queued."""

    def __init__(self, committer: GroupCommitter) -> None:
        self._committer = committer

    def wait_queued(self, n: int, timeout: float) -> bool:
        c = self._committer
        with c._cond:
            return c._cond.wait_for(lambda: len(c._queue) >= n, timeout)


class GroupCommitter:
    """Owns `conn` (autocommit mode: isolation_level=None) from start to close()."""

    def __init__(self, conn: sqlite3.Connection, *, name: str) -> None:
        self.counters = WriterCounters()
        self._conn = conn
        self._cond = threading.Condition()
        self._queue: list[_Job[Any]] = []  # submitted, not yet taken by the writer
        self._closing = False  # no new submissions; the writer drains the queue and stops
        self._paused = False  # the writer takes no batch (tests, through pause())
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Operation[T], what: str, timeout: float | None = None) -> T:
        """Run fn(conn) in the writer's next transaction; return its result once committed.
        Raises what fn raised (a sqlite3.Error wrapped in StoreError), StoreError if the
        batch did not commit, StoreClosedError after close(), StoreTimeoutError if it was
        not committed within `timeout` seconds (it may still be, later)."""
        job = self._enqueue(_Job(fn, what))
        if not job.done.wait(timeout):
            raise StoreTimeoutError(f"{what}: not committed within {timeout:.3g}s")
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]  # set by the writer when no error

    def submit_nowait(self, fn: Operation[Any], what: str) -> None:
        """Queue fn(conn) for the writer's next transaction and return at once: writes are
        committed in the order they were queued (so a later waited-for write implies this
        one); a failure is logged and counted, not raised. StoreClosedError after close()."""
        self._enqueue(_Job(fn, what, detached=True))

    def _enqueue(self, job: _Job[T]) -> _Job[T]:
        with self._cond:
            if self._closing:
                raise StoreClosedError(f"store is closed: cannot {job.what}")
            self._queue.append(job)
            self._cond.notify_all()
        return job

    def close(self) -> None:
        """Commit what is queued, stop the writer (joined) and close the connection."""
        with self._cond:
            already = self._closing
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        if not already:
            self._conn.close()

    @contextlib.contextmanager
    def pause(self) -> Iterator[PausedWriter]:
        """Test hook: while inside, the writer starts no batch (writes queue up), so what is
        submitted meanwhile is committed together on exit. close() ends a pause."""
        with self._cond:
            self._paused = True
        try:
            yield PausedWriter(self)
        finally:
            with self._cond:
                self._paused = False
                self._cond.notify_all()

    # the writer thread

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._run_batch(batch)
        except BaseException as exc:
            _log.error("store.writer_crashed", error=repr(exc))
            with self._cond:
                self._closing = True
                left, self._queue = self._queue, []
            for job in left:
                job.error = StoreError(f"{job.what} failed: the store's writer stopped")
                job.done.set()
            raise

    def _next_batch(self) -> list[_Job[Any]] | None:
        with self._cond:
            while (self._paused or not self._queue) and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None  # closing, and everything queued is done
            batch = self._queue[:MAX_BATCH]
            del self._queue[:MAX_BATCH]
            return batch

    def _run_batch(self, batch: list[_Job[Any]]) -> None:
        started = time.perf_counter()
        failure: StoreError | None = None
        try:
            failure = self._transact(batch)
        except BaseException as exc:  # a bug, or the interpreter stopping: wake them all
            failure = StoreError(f"the store's writer stopped: {exc!r}")
            raise
        finally:
            if failure is not None:
                self._abandon(batch, failure)
            self._count(batch, failure is None, (time.perf_counter() - started) * 1000.0)
            for job in batch:
                if job.detached and job.error is not None:
                    _log.error("store.write_failed", what=job.what, error=str(job.error))
                job.done.set()

    def _transact(self, batch: list[_Job[Any]]) -> StoreError | None:
        """One transaction for the batch: None once committed, else why it was not."""
        conn = self._conn
        step = "begin a transaction"
        try:
            conn.execute("BEGIN IMMEDIATE")
            step = "run the batch"
            lost = self._run_jobs(batch)
            if lost is not None:
                return lost
            step = "commit"
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            failure = StoreError(f"could not {step}: {type(exc).__name__}: {exc}")
            failure.__cause__ = exc
            return failure
        return None

    def _run_jobs(self, batch: list[_Job[Any]]) -> StoreError | None:
        """Run each job in its own savepoint; None, or the error that lost the transaction."""
        conn = self._conn
        for job in batch:
            conn.execute("SAVEPOINT op")
            try:
                job.result = job.fn(conn)
            except Exception as exc:  # noqa: BLE001  (each write's failure is its own caller's)
                job.error = _wrap(exc, job.what)
                if not conn.in_transaction:  # SQLite rolled the whole transaction back
                    return StoreError(f"transaction lost after {job.what}: {exc}")
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            else:
                conn.execute("RELEASE op")
        return None

    def _abandon(self, batch: list[_Job[Any]], failure: StoreError) -> None:
        _log.error("store.batch_failed", operations=len(batch), error=str(failure))
        with contextlib.suppress(sqlite3.Error):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        for job in batch:
            job.error = StoreError(f"{job.what} failed: {failure}")
            job.error.__cause__ = failure

    def _count(self, batch: list[_Job[Any]], committed: bool, elapsed_ms: float) -> None:
        failed = sum(1 for job in batch if job.error is not None)
        with self.counters.lock:
            c = self.counters
            c.batches += 1
            c.max_batch = max(c.max_batch, len(batch))
            c.failed += failed
            if committed:
                c.commits += 1
                c.operations += len(batch) - failed
                c.latencies_ms.append(elapsed_ms)


def _wrap(exc: BaseException, what: str) -> BaseException:
    if isinstance(exc, sqlite3.Error):
        wrapped = StoreError(f"{what} failed: {type(exc).__name__}: {exc}")
        wrapped.__cause__ = exc
        return wrapped
    return exc
