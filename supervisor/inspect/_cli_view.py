"""Rich renderables for the CLI, from the JSON form of a health snapshot (TreeHealth.tree()
locally, or /tree from a running system's endpoint), so both look the same.

Every value shown comes from agents or from a remote endpoint, so it reaches rich as Text,
never as a markup string (an error mentioning items[/0] stays text). The status table fits
the console it is printed on: wide consoles get a "last error" column; narrow ones (piped
output is 80 columns) a compact table with the errors listed under it, wrapped."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

__all__ = ["STATE_STYLES", "StatusView", "node_label", "render_tree", "status_table"]

STATE_STYLES = {
    "running": "green",
    "degraded": "yellow",
    "starting": "cyan",
    "restarting": "yellow",
    "backoff": "yellow",
    "stopping": "magenta",
    "terminating": "magenta",
    "down": "red",
    "failed": "bold red",
    "stopped": "dim",
    "removed": "dim",
}
BREAKER_STYLES = {"closed": "green", "half_open": "yellow", "open": "bold red"}
WIDE = 120  # consoles at least this wide get the "last error" column


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def node_label(node: dict[str, Any], rates: dict[str, float] | None = None) -> Text:
    state = str(node.get("state"))
    label = Text()
    path = str(node.get("path", "?"))
    label.append(path.rsplit("/", 1)[-1], style="bold")
    label.append(f"  {state}", style=STATE_STYLES.get(state, "white"))
    if node.get("kind") == "supervisor":
        budget = f"{node.get('budget_used', 0)}/{node.get('max_restarts')}"
        label.append(
            f"  {node.get('strategy')} budget {budget} in {node.get('within_seconds')}s",
            style="dim",
        )
        if node.get("escalations"):
            label.append(f"  escalations {node['escalations']}", style="red")
        return label
    breaker = _dict(node.get("breaker"))
    if breaker:
        b_state = str(breaker.get("state"))
        label.append(f"  breaker {b_state}", style=BREAKER_STYLES.get(b_state, "white"))
    label.append(
        f"  restarts {node.get('restarts', 0)}", style="red" if node.get("restarts") else "dim"
    )
    limit = node.get("mailbox_limit")
    label.append(
        f"  mailbox {node.get('mailbox_depth', 0)}{'/' + str(limit) if limit else ''}", style="dim"
    )
    label.append(f"  processed {node.get('processed', 0)}", style="dim")
    if rates is not None and path in rates:
        label.append(f"  {rates[path]:.1f} msg/s", style="cyan")
    if node.get("agent_state"):
        label.append(f"  [{node['agent_state']}]", style="blue")
    if node.get("abandoned"):
        label.append(f"  abandoned {node['abandoned']}", style="red")
    if node.get("last_error"):
        label.append(f"  last error: {str(node['last_error'])[:70]}", style="red dim")
    return label


def render_tree(snapshot: dict[str, Any], rates: dict[str, float] | None = None) -> Tree:
    """snapshot: TreeHealth.tree() / the /tree endpoint's JSON."""
    state = str(snapshot.get("state"))
    title = Text(f"{snapshot.get('root')}  ", style="bold")
    title.append(state, style=STATE_STYLES.get(state, "white"))
    dead = _dict(snapshot.get("dead_letters"))
    if dead:
        total = sum(v for v in dead.values() if isinstance(v, int))
        title.append(f"  dead letters {total}", style="yellow")
    root = Tree(title)

    def add(parent: Tree, node: dict[str, Any]) -> None:
        branch = parent.add(node_label(node, rates))
        for fb in node.get("fallbacks") or []:
            branch.add(Text("fallback ", style="cyan") + node_label(_dict(fb), rates))
        for child in node.get("children") or []:
            add(branch, _dict(child))

    add(root, _dict(snapshot.get("tree")))
    return root


class StatusView:
    """The status table of a health snapshot (TreeHealth.model_dump(mode='json') / the
    /health endpoint's JSON), laid out for the width it is rendered at."""

    def __init__(self, health: dict[str, Any]) -> None:
        self.health = health

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = options.max_width >= WIDE
        actors = {str(p): _dict(a) for p, a in _dict(self.health.get("actors")).items()}
        yield _table(self.health, actors, wide)
        errors = [(p, a["last_error"]) for p, a in actors.items() if a.get("last_error")]
        if not wide and errors:
            yield Text("last errors:", style="bold")
            for path, error in errors:
                line = Text(f"  {path}: ", style="bold")
                line.append(str(error), style="red")
                line.overflow = "fold"
                yield line


def status_table(health: dict[str, Any]) -> StatusView:
    """health: TreeHealth.model_dump(mode='json') / the /health endpoint's JSON."""
    return StatusView(health)


def _table(health: dict[str, Any], actors: dict[str, dict[str, Any]], wide: bool) -> Table:
    state = str(health.get("state"))
    title = Text(f"{health.get('root')}: ")
    title.append(state, style=STATE_STYLES.get(state, ""))
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("path", overflow="fold", ratio=2 if wide else 1, min_width=8)
    small = ["state", "restarts", "breaker", "mailbox", "processed", "p99 ms"]
    if wide:
        small.insert(0, "kind")
    numeric = {"restarts", "mailbox", "processed", "p99 ms"}
    for column in small:
        table.add_column(column, no_wrap=True, justify="right" if column in numeric else "left")
    if wide:
        table.add_column("last error", overflow="fold", ratio=3, min_width=16)
    for path, a in actors.items():
        a_state = str(a.get("state", ""))
        breaker = str(_dict(a.get("breaker")).get("state", "-"))
        p99 = a.get("latency_p99_ms")
        limit = a.get("mailbox_limit")
        mailbox = f"{a.get('mailbox_depth', 0)}{'/' + str(limit) if limit else ''}"
        cells = [
            Text(path),
            Text(a_state, style=STATE_STYLES.get(a_state, "")),
            Text(str(a.get("restarts", 0)), style="red" if a.get("restarts") else ""),
            Text(breaker, style=BREAKER_STYLES.get(breaker, "")),
            Text(mailbox),
            Text(str(a.get("processed", 0))),
            Text(f"{p99:.1f}" if isinstance(p99, int | float) else "-"),
        ]
        if wide:
            cells.insert(1, Text(str(a.get("kind", ""))))
            cells.append(Text(str(a.get("last_error") or ""), style="red"))
        table.add_row(*cells)
    return table
