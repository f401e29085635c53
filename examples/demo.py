"""The README demo: a stream of support tickets through the support desk, shown live.

    hivekeeper demo [--tickets 120] [--concurrency 6] [--seed 7] [--online]

It shows, as it goes, how many tickets were answered by agents and by fallbacks, how many
tool calls were executed and refused by the guard, which breakers opened and which agents
were restarted, and ends with a summary table. Offline by default (ChaosLLM over a scripted
model, no key needed); --online (or OPENAI_BASE_URL set) uses a real endpoint.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from supervisor import TreeHealth, start, subscribe

from .support_desk import Ticket, desk_tree, offline_llm, online_llm

TEMPLATES = (
    "Where is my order #{o}?",
    "My parcel #{o} seems lost, please help",
    "Please refund order #{o}, it arrived broken",
    "Refund everything on #{o} right now!",
    "I was charged twice for #{o}",
    "Please delete my ticket about #{o}",
    "Can you close my ticket for #{o}? All good now",
    "Invoice for #{o} is wrong",
)
OUTAGE_SECONDS = 2.5
NOTABLE = {
    "breaker_state_changed",
    "agent_crashed",
    "child_restarting",
    "tool_call_refused",
    "fallback_engaged",
    "child_abandoned",
    "supervisor_escalated",
}


def make_tickets(n: int, seed: int) -> list[Ticket]:
    rng = random.Random(seed)
    return [
        Ticket(
            id=i + 1,
            customer=f"customer-{rng.randrange(1000)}",
            text=rng.choice(TEMPLATES).format(o=rng.choice((1001, 1002, 1003, 1004))),
        )
        for i in range(n)
    ]


@dataclass
class Tally:
    """Everything the live view shows, updated from results and events (thread-safe)."""

    total: int
    done: int = 0
    by_agents: int = 0
    by_fallbacks: int = 0
    failed: int = 0
    tools_executed: int = 0
    tools_refused: int = 0
    refusals_by_kind: Counter[str] = field(default_factory=Counter)
    breakers_opened: Counter[str] = field(default_factory=Counter)
    crashes: Counter[str] = field(default_factory=Counter)
    fallback_traces: set[str] = field(default_factory=set)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_event(self, e: dict[str, Any]) -> None:
        name = e["event"]
        with self.lock:
            if name == "tool_call_executed":
                self.tools_executed += 1
            elif name == "tool_call_refused":
                self.tools_refused += 1
                self.refusals_by_kind[str(e.get("kind"))] += 1
            elif name == "breaker_state_changed" and e.get("new") == "open":
                self.breakers_opened[str(e.get("path"))] += 1
            elif name == "agent_crashed":
                self.crashes[str(e.get("path"))] += 1
            elif name == "fallback_engaged" and e.get("trace_id"):
                self.fallback_traces.add(str(e["trace_id"]))
            if name in NOTABLE:
                self._add_recent(_describe(e))

    def _add_recent(self, line: str) -> None:
        """Append, folding a repeat of the previous line into a count (caller holds lock)."""
        if self.recent and self.recent[-1].split("  [dim]x")[0] == line:
            previous = self.recent[-1]
            count = (
                int(previous.rsplit("x", 1)[1].rstrip("[/]")) + 1 if "  [dim]x" in previous else 2
            )
            self.recent[-1] = f"{line}  [dim]x{count}[/]"
        else:
            self.recent.append(line)

    def on_result(self, trace_id: str | None, ok: bool, fallback: bool) -> int:
        """Count one answered ticket; how many are done now."""
        with self.lock:
            self.done += 1
            if not ok:
                self.failed += 1
            elif fallback or trace_id in self.fallback_traces:
                self.by_fallbacks += 1
            else:
                self.by_agents += 1
            return self.done

    def note(self, line: str) -> None:
        with self.lock:
            self._add_recent(line)


def _describe(e: dict[str, Any]) -> str:
    name, path = e["event"], e.get("path") or e.get("supervisor")
    if name == "breaker_state_changed":
        return f"[yellow]breaker[/] {path}: {e.get('old')} -> [bold]{e.get('new')}[/]"
    if name == "tool_call_refused":
        return f"[magenta]refused[/] {e.get('tool')} at {path}: {e.get('kind')}"
    if name == "fallback_engaged":
        reason = str(e.get("reason")).split("; next trial in")[0]
        return f"[cyan]fallback[/] for {path}: {reason[:60]}"
    if name == "agent_crashed":
        return f"[red]crash[/] {path}: {str(e.get('reason'))[:60]}"
    if name == "child_restarting":
        return f"[green]restart[/] {path} ({e.get('strategy')}, delay {float(e.get('delay') or 0):.2f}s)"
    return f"{name} {path}: {str(e.get('reason'))[:60]}"


def live_panel(t: Tally) -> Panel:
    with t.lock:
        table = Table.grid(padding=(0, 2))
        table.add_row("tickets", f"{t.done}/{t.total}")
        table.add_row("answered by agents", f"[green]{t.by_agents}[/]")
        table.add_row("answered by fallbacks", f"[cyan]{t.by_fallbacks}[/]")
        table.add_row("failed", f"[red]{t.failed}[/]")
        table.add_row(
            "tool calls executed / refused", f"{t.tools_executed} / [magenta]{t.tools_refused}[/]"
        )
        table.add_row(
            "breakers opened", ", ".join(f"{p} x{n}" for p, n in t.breakers_opened.items()) or "-"
        )
        table.add_row(
            "crashes (restarted)", ", ".join(f"{p} x{n}" for p, n in t.crashes.items()) or "-"
        )
        recent = "\n".join(t.recent) or "-"
    return Panel(
        Group(table, Panel(recent, title="recent events", border_style="dim")),
        title="hivekeeper demo: support desk",
        border_style="blue",
    )


def summary_table(health: TreeHealth) -> Table:
    table = Table(title=f"summary (tree {health.state})")
    for column in (
        "path",
        "kind",
        "state",
        "processed",
        "restarts",
        "breaker",
        "fallback answers",
        "failures",
        "p50 ms",
        "p99 ms",
    ):
        table.add_column(
            column, justify="right" if column not in ("path", "kind", "state") else "left"
        )
    for path, a in health.actors.items():
        breaker = f"{a.breaker.state} (opened {a.breaker.opens_total}x)" if a.breaker else "-"
        failures = ", ".join(f"{k}={v}" for k, v in sorted(a.failures.items())) or "-"
        p50 = f"{a.latency_p50_ms:.1f}" if a.latency_p50_ms is not None else "-"
        p99 = f"{a.latency_p99_ms:.1f}" if a.latency_p99_ms is not None else "-"
        table.add_row(
            path,
            a.kind,
            a.state,
            str(a.processed),
            str(a.restarts),
            breaker,
            str(a.fallback_answers),
            failures,
            p50,
            p99,
        )
    return table


def run_demo(
    tickets: int = 120,
    concurrency: int = 6,
    seed: int = 7,
    rate: float = 15.0,
    online: bool | None = None,
    console: Console | None = None,
    http_port: int | None = None,
) -> Tally:
    console = console or Console()
    online = bool(os.environ.get("OPENAI_BASE_URL")) if online is None else online
    # offline, the billing model's provider has an outage while the middle fifth of the
    # tickets is answered: its breaker opens, the rule-based fallback answers, then traffic
    # returns to the agent
    outage = threading.Event()
    tree = (
        desk_tree(online_llm, message_timeout=30.0, breaker_reset=30.0)
        if online
        else desk_tree(
            lambda role: offline_llm(role, seed, outage=outage if role == "billing" else None)
        )
    )
    outage_at, outage_ends = int(tickets * 0.4), [float("inf")]

    def end_outage() -> None:
        if outage.is_set() and time.monotonic() >= outage_ends[0]:
            outage.clear()
            tally.note("[green]billing model provider: outage over[/]")

    stream = make_tickets(tickets, seed)
    tally = Tally(total=len(stream))
    unsubscribe = subscribe(tally.on_event)
    started = time.monotonic()
    try:
        with start(tree, seed=seed) as system:
            server = system.serve_http(port=http_port) if http_port else None
            if server is not None:
                console.print(f"tree page: {server.url}")

            def one(ticket: Ticket) -> None:
                result = system.ask(
                    "desk/router", ticket.model_dump(), timeout=60.0 if online else 8.0
                )
                done = tally.on_result(result.trace_id, result.ok, result.fallback_used)
                if online:
                    return
                if done == outage_at:
                    outage_ends[0] = time.monotonic() + OUTAGE_SECONDS
                    outage.set()
                    tally.note("[red]billing model provider: outage begins[/]")

            with (
                Live(live_panel(tally), console=console, refresh_per_second=8) as live,
                ThreadPoolExecutor(concurrency) as pool,
            ):
                futures = []
                tick = threading.Event()
                next_at = time.monotonic()
                for ticket in stream:  # tickets arrive at `rate` per second, like a real queue
                    futures.append(pool.submit(one, ticket))
                    next_at += 1.0 / rate
                    while (delay := next_at - time.monotonic()) > 0:
                        end_outage()
                        live.update(live_panel(tally))
                        tick.wait(min(delay, 0.1))
                while not all(f.done() for f in futures):
                    end_outage()
                    live.update(live_panel(tally))
                    tick.wait(0.1)
                live.update(live_panel(tally))
            for f in futures:
                f.result()
            health = system.health()
            if server is not None:
                server.close()
        console.print(summary_table(health))
        console.print(
            f"{tally.done} tickets in {time.monotonic() - started:.1f}s: {tally.by_agents} answered by "
            f"agents, {tally.by_fallbacks} by fallbacks, {tally.failed} failed; "
            f"{tally.tools_refused} tool calls refused by the guard "
            f"({', '.join(f'{k}={v}' for k, v in tally.refusals_by_kind.items()) or 'none'})."
        )
    finally:
        unsubscribe()
    return tally
