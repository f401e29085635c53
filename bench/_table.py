"""One row per measure, against its target: what `python -m bench` prints as one table.

Each benchmark module has `rows() -> list[Row]` (its measures, raw pykka measured in the same
run). Run alone, it prints its rows; `python -m bench` runs each in a fresh interpreter (so
one's threads and memory do not weigh on the next) with `--rows`, which prints them as JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

__all__ = ["Row", "main_for", "per_agent", "print_rows", "ratio_row", "value_row"]


@dataclass(frozen=True)
class Row:
    measure: str
    ours: float | None  # None: not measured (the capability is not built yet)
    raw: float | None  # raw pykka in the same run, where the target is a ratio
    unit: str
    target: str  # as the issue states it, e.g. "<= 1.10x", "< 1.5 s"
    passed: bool | None  # None: no target (context only)

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.raw:
            return None
        return self.ours / self.raw


def ratio_row(
    measure: str, ours: float, raw: float, unit: str, limit: float, at_least: bool = False
) -> Row:
    """A target on ours/raw: at most `limit` (or at least, for throughput)."""
    r = ours / raw if raw else float("inf")
    sign = ">=" if at_least else "<="
    passed = r >= limit if at_least else r <= limit
    return Row(measure, ours, raw, unit, f"{sign} {limit:.2f}x", passed)


def value_row(
    measure: str, ours: float | None, unit: str, limit: float | None, raw: float | None = None
) -> Row:
    """A target on the value itself: below `limit` (None: context, no target)."""
    if limit is None:
        return Row(measure, ours, raw, unit, "-", None)
    passed = None if ours is None else ours < limit
    return Row(measure, ours, raw, unit, f"< {limit:g} {unit}", False if ours is None else passed)


def per_agent(total: float, n: int, one: float) -> float:
    """What each agent of an n-agent tree cost, seconds: the tree's time above a one-agent
    tree's (the system's own threads and loops, measured in the same run), over n - 1."""
    return max(total - one, 0.0) / max(n - 1, 1)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def print_rows(rows: list[Row]) -> None:
    width = max([len(r.measure) for r in rows] + [7])
    print(
        f"{'measure':<{width}}  {'hivekeeper':>12}  {'raw pykka':>12}  {'ratio':>6}  {'target':>12}  result"
    )
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        result = {True: "pass", False: "FAIL", None: ""}[r.passed]
        ours = f"{_fmt(r.ours)} {r.unit}" if r.ours is not None else "not built"
        raw = f"{_fmt(r.raw)} {r.unit}" if r.raw is not None else "-"
        print(f"{r.measure:<{width}}  {ours:>12}  {raw:>12}  {ratio:>6}  {r.target:>12}  {result}")


def main_for(rows: Callable[[], list[Row]]) -> None:
    """A benchmark module's __main__: its rows as a table, or as JSON with --rows."""
    measured = rows()
    if "--rows" in sys.argv[1:]:
        print(json.dumps([asdict(r) for r in measured]))
    else:
        print_rows(measured)
