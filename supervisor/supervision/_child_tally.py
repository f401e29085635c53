"""ChildTally: what the reconcile loop asks of a supervisor's children, kept up to date as
their records change, so that no supervisor message scans every child.

A supervisor of 10,000 children gets 10,000 Started messages while it starts them; a scan of
all children per message made starting them O(n^2) (26 s for 10,000 here). The reconcile loop
asks: is any child stopping? restarting? which is the first child, in declaration order, that
is down and should run? which is the last one that is up? The tally answers each in O(1) or
O(log n): counters updated on every change of a record's phase, want, restart_pending and
first_start (ChildRecord reports them), and two heaps in declaration order, pruned lazily.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Generator
from typing import TYPE_CHECKING

from ._states import Phase, Want

if TYPE_CHECKING:
    from ._child_record import ChildRecord

__all__ = ["ChildTally", "Kinds"]

_UP = (Phase.RUNNING, Phase.STARTING)


class Kinds:
    """The questions, as flags of one record: computed from its tallied fields only."""

    __slots__ = ("down_run", "new_down", "remove_down", "restarting", "stopping", "to_stop", "up")

    def __init__(self, rec: ChildRecord) -> None:
        phase, want = rec.phase, rec.want
        self.stopping = phase == Phase.STOPPING
        self.restarting = phase == Phase.STARTING and not rec.first_start
        self.up = phase in _UP
        self.to_stop = self.up and (want != Want.RUN or rec.restart_pending)
        self.remove_down = want == Want.REMOVE and phase == Phase.DOWN
        self.down_run = phase == Phase.DOWN and want == Want.RUN
        self.new_down = self.down_run and rec.first_start


class ChildTally:
    def __init__(self) -> None:
        self.stopping = 0
        self.restarting = 0  # starting, and not a start_child's first start
        self.to_stop = 0  # up, and should not be (removed, stopped, or restarted)
        self.remove_down = 0
        self.down_run = 0
        self.new_down = 0  # start_child children waiting for their first start
        self._seq = itertools.count()
        # heaps of declaration orders (ints only: a removed child is not kept alive by them)
        self._recs: dict[int, ChildRecord] = {}  # order -> record, while enrolled
        self._down: list[int] = []  # min-heap
        self._up: list[int] = []  # max-heap (negated orders)

    def enrol(self, rec: ChildRecord) -> None:
        """Count `rec`, declared after every record enrolled before it."""
        rec.order = next(self._seq)
        rec.kinds = Kinds(rec)
        self._recs[rec.order] = rec
        self._count(rec.kinds, 1)
        self._index(rec)

    def withdraw(self, rec: ChildRecord) -> None:
        if rec.kinds is not None:
            self._count(rec.kinds, -1)
            rec.kinds = None  # its heap entries are dropped as they are met
            del self._recs[rec.order]
            rec.in_down_heap = rec.in_up_heap = False
            self._compact()

    def _compact(self) -> None:
        """Drop the entries of removed children once they are most of a heap (a tree that
        starts and stops a child per conversation would otherwise grow them for ever)."""
        live = len(self._recs)
        recs = self._recs
        if len(self._down) > 2 * live + 64:
            self._down = [o for o in self._down if o in recs]
            heapq.heapify(self._down)
        if len(self._up) > 2 * live + 64:
            self._up = [o for o in self._up if -o in recs]
            heapq.heapify(self._up)

    def changed(self, rec: ChildRecord) -> None:
        """One of rec's tallied fields changed (ChildRecord calls this)."""
        old = rec.kinds
        if old is None:
            return
        rec.kinds = Kinds(rec)
        self._count(old, -1)
        self._count(rec.kinds, 1)
        self._index(rec)

    def _count(self, k: Kinds, sign: int) -> None:
        self.stopping += sign * k.stopping
        self.restarting += sign * k.restarting
        self.to_stop += sign * k.to_stop
        self.remove_down += sign * k.remove_down
        self.down_run += sign * k.down_run
        self.new_down += sign * k.new_down

    def _index(self, rec: ChildRecord) -> None:
        """At most one entry per record in each heap (a stale one is dropped when met)."""
        kinds = rec.kinds
        assert kinds is not None
        if kinds.down_run and not rec.in_down_heap:
            rec.in_down_heap = True
            heapq.heappush(self._down, rec.order)
        if kinds.up and not rec.in_up_heap:
            rec.in_up_heap = True
            heapq.heappush(self._up, -rec.order)

    def down_to_run(self) -> Generator[ChildRecord, None, None]:
        """The children that are down and should run, in declaration order. Stop iterating
        at any time: what was not reached, and what was reached and is still down, stays."""
        heap, recs = self._down, self._recs
        seen: list[ChildRecord] = []
        try:
            while heap:
                rec = recs.get(heapq.heappop(heap))
                if rec is None:
                    continue  # removed
                if rec.kinds is None or not rec.kinds.down_run:
                    rec.in_down_heap = False  # no longer down: stale
                    continue
                seen.append(rec)
                yield rec
        finally:
            for rec in seen:
                if rec.kinds is not None and rec.kinds.down_run:
                    heapq.heappush(heap, rec.order)
                else:
                    rec.in_down_heap = False

    def last_up(self) -> ChildRecord | None:
        """The last child in declaration order that is up (running or starting)."""
        heap, recs = self._up, self._recs
        while heap:
            rec = recs.get(-heap[0])
            if rec is not None and rec.kinds is not None and rec.kinds.up:
                return rec
            heapq.heappop(heap)
            if rec is not None:
                rec.in_up_heap = False
        return None
