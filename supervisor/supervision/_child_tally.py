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

__all__ = ["ChildTally", "kinds_of"]

_UP = (Phase.RUNNING, Phase.STARTING)

# The questions, as bits of one record's flags (computed from its tallied fields only)
STOPPING, RESTARTING, UP, TO_STOP, REMOVE_DOWN, DOWN_RUN, NEW_DOWN = (1 << i for i in range(7))


def kinds_of(rec: ChildRecord) -> int:
    phase, want = rec.phase, rec.want
    flags = 0
    if phase is Phase.STOPPING:
        flags |= STOPPING
    elif phase is Phase.DOWN:
        if want is Want.RUN:
            flags |= DOWN_RUN | (NEW_DOWN if rec.first_start else 0)
        elif want is Want.REMOVE:
            flags |= REMOVE_DOWN
    else:  # running or starting: up
        flags |= UP
        if want is not Want.RUN or rec.restart_pending:
            flags |= TO_STOP
        if phase is Phase.STARTING and not rec.first_start:
            flags |= RESTARTING
    return flags


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
        flags = rec.kinds = kinds_of(rec)
        self._recs[rec.order] = rec
        self._count(flags, 1)
        self._index(rec, flags)

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
        new = kinds_of(rec)
        if new == old:
            return
        rec.kinds = new
        self._count(old, -1)
        self._count(new, 1)
        self._index(rec, new)

    def _count(self, flags: int, sign: int) -> None:
        if flags & STOPPING:
            self.stopping += sign
        if flags & RESTARTING:
            self.restarting += sign
        if flags & TO_STOP:
            self.to_stop += sign
        if flags & REMOVE_DOWN:
            self.remove_down += sign
        if flags & DOWN_RUN:
            self.down_run += sign
        if flags & NEW_DOWN:
            self.new_down += sign

    def _index(self, rec: ChildRecord, flags: int) -> None:
        """At most one entry per record in each heap (a stale one is dropped when met)."""
        if flags & DOWN_RUN and not rec.in_down_heap:
            rec.in_down_heap = True
            heapq.heappush(self._down, rec.order)
        if flags & UP and not rec.in_up_heap:
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
                if rec.kinds is None or not rec.kinds & DOWN_RUN:
                    rec.in_down_heap = False  # no longer down: stale
                    continue
                seen.append(rec)
                yield rec
        finally:
            for rec in seen:
                if rec.kinds is not None and rec.kinds & DOWN_RUN:
                    heapq.heappush(heap, rec.order)
                else:
                    rec.in_down_heap = False

    def last_up(self) -> ChildRecord | None:
        """The last child in declaration order that is up (running or starting)."""
        heap, recs = self._up, self._recs
        while heap:
            rec = recs.get(-heap[0])
            if rec is not None and rec.kinds is not None and rec.kinds & UP:
                return rec
            heapq.heappop(heap)
            if rec is not None:
                rec.in_up_heap = False
        return None
