"""Rich renderables for the CLI, from the JSON form of a health snapshot (TreeHealth.tree()
locally, or /tree from a running system's endpoint), so both look the same."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

__all__ = ["STATE_STYLES", "node_label", "render_tree", "status_table"]

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


def node_label(node: dict[str, Any], rates: dict[str, float] | None = None) -> Text:
    state = str(node.get("state"))
    label = Text()
    label.append(str(node["path"]).rsplit("/", 1)[-1], style="bold")
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
    breaker = node.get("breaker")
    if breaker:
        label.append(
            f"  breaker {breaker['state']}", style=BREAKER_STYLES.get(breaker["state"], "white")
        )
    label.append(
        f"  restarts {node.get('restarts', 0)}", style="red" if node.get("restarts") else "dim"
    )
    limit = node.get("mailbox_limit")
    label.append(
        f"  mailbox {node.get('mailbox_depth', 0)}{'/' + str(limit) if limit else ''}", style="dim"
    )
    label.append(f"  processed {node.get('processed', 0)}", style="dim")
    if rates is not None and node["path"] in rates:
        label.append(f"  {rates[node['path']]:.1f} msg/s", style="cyan")
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
    dead = snapshot.get("dead_letters") or {}
    if dead:
        title.append(f"  dead letters {sum(dead.values())}", style="yellow")
    root = Tree(title)

    def add(parent: Tree, node: dict[str, Any]) -> None:
        branch = parent.add(node_label(node, rates))
        for fb in node.get("fallbacks", []):
            branch.add(Text("fallback ", style="cyan") + node_label(fb, rates))
        for child in node.get("children", []):
            add(branch, child)

    add(root, snapshot["tree"])
    return root


def status_table(health: dict[str, Any]) -> Table:
    """health: TreeHealth.model_dump(mode='json') / the /health endpoint's JSON."""
    actors = health.get("actors", {})
    table = Table(title=f"{health.get('root')}: {health.get('state')}", title_justify="left")
    widest = max((len(p) for p in actors), default=4)
    table.add_column("path", no_wrap=True, min_width=min(widest, 48))
    for column, width in (
        ("kind", 10),
        ("state", 10),
        ("restarts", 8),
        ("breaker", 9),
        ("mailbox", 7),
        ("processed", 9),
        ("p99 ms", 7),
    ):
        table.add_column(column, no_wrap=True, min_width=width)
    table.add_column("last error", no_wrap=True, overflow="ellipsis", ratio=1)
    for path, a in actors.items():
        breaker = (a.get("breaker") or {}).get("state", "-")
        p99 = a.get("latency_p99_ms")
        state = a.get("state", "")
        table.add_row(
            path,
            a.get("kind", ""),
            Text(state, style=STATE_STYLES.get(state, "")),
            str(a.get("restarts", 0)),
            breaker,
            str(a.get("mailbox_depth", 0)),
            str(a.get("processed", 0)),
            f"{p99:.1f}" if p99 is not None else "-",
            str(a.get("last_error") or ""),
        )
    return table
