"""The durable store (supervisor.store): mailbox, snapshots, dead letters, group commit,
opening and refusing databases, and a kill -9 in the middle of committing."""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from supervisor.store import (
    SCHEMA_VERSION,
    Appended,
    SQLiteStore,
    Store,
    StoreClosedError,
    StoreError,
    StoreOpenError,
    StoreSchemaError,
    UnknownMessageError,
    open_store,
)
from supervisor.store._group_commit import GroupCommitter

pytestmark = pytest.mark.timeout(60)
A = "root/chat"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(db) as s:
        yield s


def run_in_one_batch(store: SQLiteStore, calls: Sequence[Callable[[], Any]]) -> list[Future[Any]]:
    """Each call on its own thread, all queued while the writer is paused: one transaction."""
    with ThreadPoolExecutor(len(calls)) as pool:
        with store._pause() as writer:
            futures = [pool.submit(call) for call in calls]
            assert writer.wait_queued(len(calls), timeout=20)
    return futures


# mailbox


def test_append_and_pending_in_order(store: SQLiteStore) -> None:
    seqs = [store.append(A, f"m{i}".encode()).seq for i in range(5)]
    other = store.append("root/other", b"x").seq
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 5
    assert other > seqs[-1]
    pending = store.pending(A)
    assert [m.seq for m in pending] == seqs
    assert [m.payload for m in pending] == [f"m{i}".encode() for i in range(5)]
    assert all(m.attempts == 0 and m.idempotency_key is None for m in pending)
    assert pending[0].accepted_at <= pending[-1].accepted_at
    assert [m.seq for m in store.pending(A, after=seqs[1], limit=2)] == seqs[2:4]
    assert store.pending_count(A) == 5
    assert store.pending_count("root/none") == 0
    assert store.pending_counts() == {A: 5, "root/other": 1}
    assert store.pending("root/none") == []


def test_ack_removes_only_that_message(store: SQLiteStore) -> None:
    s1, s2, s3 = (store.append(A, b"%d" % i).seq for i in range(3))
    store.ack(A, s2)
    assert [m.seq for m in store.pending(A)] == [s1, s3]
    with pytest.raises(UnknownMessageError) as info:
        store.ack(A, s2)  # already acknowledged
    assert (info.value.agent, info.value.seq) == (A, s2)
    with pytest.raises(UnknownMessageError):
        store.ack("root/other", s1)  # another agent's message
    assert store.pending_count(A) == 2


def test_seq_is_never_reused_after_the_last_is_acked(db: Path) -> None:
    with SQLiteStore(db) as s:
        first = s.append(A, b"a").seq
        s.ack(A, first)
    with SQLiteStore(db) as s:
        assert s.append(A, b"b").seq > first


def test_ack_with_snapshot_is_one_transaction(store: SQLiteStore) -> None:
    seq = store.append(A, b"m").seq
    with pytest.raises(UnknownMessageError):
        store.ack(A, seq + 100, snapshot=b"must not be saved")
    assert store.load_snapshot(A) is None
    store.ack(A, seq, snapshot=b"state-1")
    snap = store.load_snapshot(A)
    assert snap is not None
    assert snap.data == b"state-1"
    assert snap.version == 1
    assert store.pending(A) == []


def test_snapshot_versions_and_missing(store: SQLiteStore) -> None:
    assert store.load_snapshot(A) is None
    store.save_snapshot(A, b"one")
    first = store.load_snapshot(A)
    store.save_snapshot(A, bytearray(b"two"))  # type: ignore[arg-type]  # bytes-like is accepted
    second = store.load_snapshot(A)
    assert first is not None
    assert second is not None
    assert (first.data, first.version) == (b"one", 1)
    assert (second.data, second.version) == (b"two", 2)
    assert second.saved_at >= first.saved_at
    assert store.load_snapshot("root/other") is None


def test_idempotent_append_of_a_pending_message(store: SQLiteStore) -> None:
    first = store.append(A, b"m", idempotency_key="k1")
    again = store.append(A, b"m (resent)", idempotency_key="k1")
    assert again == Appended(first.seq, duplicate=True)
    assert not first.duplicate
    assert [m.payload for m in store.pending(A)] == [b"m"]
    assert store.pending(A)[0].idempotency_key == "k1"
    other = store.append("root/other", b"m", idempotency_key="k1")  # keys are per agent
    assert not other.duplicate


def test_idempotent_append_of_a_handled_message(db: Path) -> None:
    with SQLiteStore(db) as s:
        seq = s.append(A, b"m", idempotency_key="k1").seq
        s.ack(A, seq)
    with SQLiteStore(db) as s:  # remembered across a reopen
        assert s.append(A, b"m", idempotency_key="k1") == Appended(seq, duplicate=True)
        assert s.pending(A) == []


def test_handled_keys_are_bounded_per_agent(db: Path) -> None:
    with SQLiteStore(db, seen_keys_per_agent=2) as s:
        for key in ("k1", "k2", "k3"):
            s.ack(A, s.append(A, b"m", idempotency_key=key).seq)
        assert not s.append(A, b"m", idempotency_key="k1").duplicate  # the oldest forgotten
        assert s.append(A, b"m", idempotency_key="k2").duplicate
        assert s.append(A, b"m", idempotency_key="k3").duplicate


def test_begin_attempt_counts_across_reopen(db: Path) -> None:
    with SQLiteStore(db) as s:
        seq = s.append(A, b"m").seq
        assert [s.begin_attempt(A, seq), s.begin_attempt(A, seq)] == [1, 2]
        with pytest.raises(UnknownMessageError):
            s.begin_attempt(A, seq + 1)
    with SQLiteStore(db) as s:
        assert s.pending(A)[0].attempts == 2
        assert s.begin_attempt(A, seq) == 3


def test_begin_attempts_records_several_deliveries_in_one_write(store: SQLiteStore) -> None:
    seqs = [store.append(A, b"m%d" % i).seq for i in range(3)]
    store.ack(A, seqs[1])
    assert store.begin_attempts(A, seqs) == {seqs[0]: 1, seqs[2]: 1}  # the acked one: left out
    assert store.begin_attempts(A, [seqs[0]]) == {seqs[0]: 2}
    assert store.begin_attempts(A, []) == {}


def test_writes_not_waited_for_commit_in_order_with_the_rest(db: Path) -> None:
    with SQLiteStore(db) as s:
        seqs = [s.append(A, b"m%d" % i).seq for i in range(3)]
        s.ack(A, seqs[0], snapshot=b"one", wait=False)
        s.save_snapshot(A, b"two", wait=False)
        assert s.add_dead_letter(A, b"dl", "poison", wait=False) is None
        s.ack(A, seqs[1])  # waited for: everything queued before it is committed too
        assert [m.seq for m in s.pending(A)] == [seqs[2]]
        snap = s.load_snapshot(A)
        assert snap is not None
        assert (snap.data, snap.version) == (b"two", 2)
        assert s.dead_letter_count() == 1


def test_a_write_not_waited_for_that_fails_is_counted_not_raised(store: SQLiteStore) -> None:
    store.ack(A, 12345, wait=False)  # no such message
    store.save_snapshot(A, b"after")  # waited for: the failed one ran before it
    assert store.stats().failed_operations == 1
    snap = store.load_snapshot(A)
    assert snap is not None
    assert snap.data == b"after"


# dead letters


def test_dead_letters_persist_across_reopen(db: Path) -> None:
    with SQLiteStore(db) as s:
        ids = [s.add_dead_letter(A, b"p%d" % i, "poison") for i in range(3)]
        ids.append(s.add_dead_letter("root/other", b"q", "unclaimed"))
    assert ids == sorted(ids)
    with SQLiteStore(db) as s:
        assert s.dead_letter_count() == 4
        letters = s.dead_letters()
        assert [d.id for d in letters] == ids
        assert (letters[-1].agent, letters[-1].payload, letters[-1].reason) == (
            "root/other",
            b"q",
            "unclaimed",
        )
        assert [d.payload for d in s.dead_letters(A)] == [b"p0", b"p1", b"p2"]
        assert [d.payload for d in s.dead_letters(A, limit=2)] == [b"p1", b"p2"]  # latest
        assert s.dead_letters("root/none") == []


# group commit


def test_concurrent_appends_share_one_transaction(store: SQLiteStore) -> None:
    calls = [lambda i=i: store.append(A, b"%d" % i) for i in range(16)]
    results = [f.result() for f in run_in_one_batch(store, calls)]
    assert len({r.seq for r in results}) == 16
    stats = store.stats()
    assert (stats.batches, stats.commits, stats.operations, stats.max_batch) == (1, 1, 16, 16)
    assert store.pending_count(A) == 16


def test_a_failing_operation_fails_only_its_caller(store: SQLiteStore) -> None:
    seq = store.append(A, b"first").seq
    calls: list[Callable[[], Any]] = [
        lambda: store.append(A, b"a"),
        lambda: store.ack(A, 10_000, snapshot=b"never"),  # no such message
        lambda: store.begin_attempt(A, seq),
        lambda: store.begin_attempt("root/other", seq),  # not that agent's
        lambda: store.append(A, b"b"),
    ]
    futures = run_in_one_batch(store, calls)
    assert isinstance(futures[1].exception(), UnknownMessageError)
    assert isinstance(futures[3].exception(), UnknownMessageError)
    assert futures[2].result() == 1
    assert not futures[0].result().duplicate
    assert not futures[4].result().duplicate
    stats = store.stats()
    assert (stats.batches - 1, stats.operations - 1, stats.failed_operations) == (1, 3, 2)
    assert store.pending_count(A) == 3
    assert store.load_snapshot(A) is None


def test_a_database_error_rolls_back_only_that_operation(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "g.db", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (x INTEGER UNIQUE)")
    writer = GroupCommitter(conn, name="test-group-commit")

    def insert(*values: int) -> Callable[[], None]:
        def op(c: sqlite3.Connection) -> None:
            for v in values:
                c.execute("INSERT INTO t VALUES (?)", (v,))

        return lambda: writer.submit(op, f"insert {values}")

    try:
        with ThreadPoolExecutor(3) as pool:
            with writer.pause() as paused:
                futures = [
                    pool.submit(insert(1)),
                    pool.submit(insert(2, 1)),
                    pool.submit(insert(3)),
                ]
                assert paused.wait_queued(3, timeout=20)
        error = futures[1].exception()
        assert isinstance(error, StoreError)
        assert isinstance(error.__cause__, sqlite3.IntegrityError)
        assert "insert (2, 1)" in str(error)
        assert futures[0].result() is None
        assert futures[2].result() is None
        assert (writer.counters.batches, writer.counters.operations) == (1, 2)
    finally:
        writer.close()
    check = sqlite3.connect(tmp_path / "g.db")
    assert sorted(x for (x,) in check.execute("SELECT x FROM t")) == [1, 3]  # 2 rolled back
    check.close()


def test_stats(db: Path) -> None:
    with SQLiteStore(db, synchronous="NORMAL") as s:
        empty = s.stats()
        assert (empty.commits, empty.commit_p50_ms, empty.latency_window) == (0, 0.0, 0)
        for i in range(5):
            s.append(A, b"%d" % i)
        stats = s.stats()
    assert stats.path == str(db)
    assert stats.synchronous == "NORMAL"
    assert (stats.commits, stats.operations, stats.batches, stats.latency_window) == (5, 5, 5, 5)
    assert 0.0 < stats.commit_p50_ms <= stats.commit_p99_ms


# closing


def test_close_commits_what_is_queued_then_refuses(db: Path) -> None:
    s = SQLiteStore(db)
    with ThreadPoolExecutor(4) as pool, s._pause() as writer:
        futures = [pool.submit(s.append, A, b"%d" % i) for i in range(4)]
        assert writer.wait_queued(4, timeout=20)
        s.close()  # ends the pause: what was queued is committed
    assert all(not f.result().duplicate for f in futures)
    s.close()  # idempotent
    for call in (
        lambda: s.append(A, b"x"),
        lambda: s.ack(A, 1),
        lambda: s.begin_attempt(A, 1),
        lambda: s.save_snapshot(A, b"x"),
        lambda: s.add_dead_letter(A, b"x", "r"),
        lambda: s.pending(A),
        s.pending_counts,
        lambda: s.load_snapshot(A),
        s.dead_letters,
    ):
        with pytest.raises(StoreClosedError):
            call()
    assert s.stats().operations == 4
    with SQLiteStore(db) as again:
        assert again.pending_count(A) == 4


# arguments, URLs and files


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.append("", b"x"), ValueError),
        (lambda s: s.append(None, b"x"), TypeError),
        (lambda s: s.append(A, "text"), TypeError),
        (lambda s: s.append(A, b"x", idempotency_key=""), ValueError),
        (lambda s: s.append(A, b"x", idempotency_key=7), TypeError),
        (lambda s: s.ack(A, 0), ValueError),
        (lambda s: s.ack(A, True), TypeError),
        (lambda s: s.ack(A, 1, snapshot={"a": 1}), TypeError),
        (lambda s: s.begin_attempt(A, "1"), TypeError),
        (lambda s: s.save_snapshot(A, None), TypeError),
        (lambda s: s.add_dead_letter(A, b"x", None), TypeError),
        (lambda s: s.dead_letters(limit=-1), ValueError),
        (lambda s: s.dead_letters(""), ValueError),
        (lambda s: s.pending(A, limit=-1), ValueError),
    ],
)
def test_bad_arguments(store: SQLiteStore, call: Callable[[Any], object], error: type) -> None:
    with pytest.raises(error):
        call(store)
    assert store.stats().batches == 0  # refused before reaching the writer


def test_bad_constructor_arguments(db: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(db, synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SQLiteStore(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seen_keys_per_agent"):
        SQLiteStore(db, seen_keys_per_agent=0)


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///rel.db") as rel:
        assert isinstance(rel, SQLiteStore)
        assert rel.path == tmp_path / "rel.db"
    with open_store(f"sqlite:///{tmp_path}/abs.db?synchronous=normal") as absolute:
        assert absolute.stats().synchronous == "NORMAL"
        assert absolute.stats().path == str(tmp_path / "abs.db")
        assert open_store(absolute) is absolute
        assert isinstance(absolute, Store)


@pytest.mark.parametrize(
    "url",
    [
        "state.db",
        "sqlite://state.db",
        "sqlite://host/state.db",
        "sqlite:///",
        "redis://localhost/0",
        "sqlite:///s.db?synchronous=OFF",
        "sqlite:///s.db?journal=delete",
    ],
)
def test_open_store_bad_urls(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"sqlite|store URL"):
        open_store(url)


@pytest.mark.parametrize("value", [None, 3, b"sqlite:///x.db", Path("x.db"), object()])
def test_open_store_bad_types(value: object) -> None:
    with pytest.raises(TypeError, match="Store object or a URL"):
        open_store(value)  # type: ignore[arg-type]


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreOpenError, match="no directory"):
        SQLiteStore(tmp_path / "missing" / "state.db")
    assert not (tmp_path / "missing").exists()
    with pytest.raises(StoreOpenError, match="is a directory"):
        SQLiteStore(tmp_path)


def test_a_newer_schema_is_refused(db: Path) -> None:
    SQLiteStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreSchemaError, match="newer"):
        SQLiteStore(db)


def test_a_foreign_database_is_refused(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    with pytest.raises(StoreOpenError, match="not a hivekeeper store"):
        SQLiteStore(db)
    db.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreOpenError):
        SQLiteStore(db)


def test_errors_pickle() -> None:
    error = pickle.loads(pickle.dumps(UnknownMessageError(A, 7)))
    assert isinstance(error, UnknownMessageError)
    assert (error.agent, error.seq) == (A, 7)
    assert str(pickle.loads(pickle.dumps(StoreClosedError("closed")))) == "closed"


# kill -9

_CHILD = textwrap.dedent(
    """
    import logging, sys, threading
    import structlog
    from supervisor.store import SQLiteStore

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))

    store = SQLiteStore(sys.argv[1])
    out = threading.Lock()

    def say(line):
        with out:
            sys.stdout.write(line + "\\n")
            sys.stdout.flush()

    def appender(i):
        for n in range(200_000):
            say("A %d" % store.append("root/a", b"%d-%d" % (i, n)).seq)

    def acker():
        for n in range(1, 200_000):
            seq = store.append("root/k", b"k").seq
            store.ack("root/k", seq, snapshot=b"%d:%d" % (seq, n))
            say("K %d %d" % (seq, n))

    threads = [threading.Thread(target=appender, args=(i,)) for i in range(3)]
    threads.append(threading.Thread(target=acker))
    for t in threads:
        t.start()
    """
)


def test_kill_9_loses_no_committed_write(db: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    appended: list[int] = []
    acked: list[tuple[int, int]] = []
    try:
        assert child.stdout is not None
        while len(appended) < 300 or len(acked) < 50:
            line = child.stdout.readline()
            assert line, f"the child stopped: {child.stderr.read() if child.stderr else ''}"
            kind, *numbers = line.split()
            if kind == "A":
                appended.append(int(numbers[0]))
            else:
                assert kind == "K", f"unexpected output: {line!r}"
                acked.append((int(numbers[0]), int(numbers[1])))
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    with SQLiteStore(db) as s:
        pending_a = {m.seq for m in s.pending("root/a")}
        assert set(appended) <= pending_a, "a committed append was lost"
        snap = s.load_snapshot("root/k")
        assert snap is not None
        snap_seq, snap_n = map(int, snap.data.split(b":"))
        # the snapshot is the one saved with the last committed ack: one save per ack
        assert snap.version == snap_n >= acked[-1][1]
        assert snap_seq >= acked[-1][0]
        pending_k = [m.seq for m in s.pending("root/k")]
        assert len(pending_k) <= 1
        assert all(seq > snap_seq for seq in pending_k)
        assert not {seq for seq, _ in acked} & set(pending_k)
