"""The live tree page served at `GET /`: one self-contained HTML document (inline style and
script, no external asset, so it works offline) that fetches `tree` every second and draws the
tree: state colours, breaker badges, restarts, mailbox, processed, p99 latency, last error,
fallbacks under their primary.

Every value taken from the JSON reaches the DOM through textContent, dataset or a class name
picked from a fixed list, never through innerHTML: an agent's error text such as
`<script>...` is shown as text. The server sends the page with a Content-Security-Policy that
allows only this inline script and style (by their hashes) and fetches to its own origin.

With a token (serve_http(..., token=...)), open the page as `/?token=<token>`: the script
reads the token from its own URL and sends it as `Authorization: Bearer <token>` on its
fetches (the JSON routes never accept the query parameter).
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["PAGE_CSP", "PAGE_HTML"]

_STYLE = """
:root { --fg: #1d2330; --muted: #5f6b7a; --bg: #f4f6f9; --card: #ffffff; --line: #d8dee6;
  --running: #2e7d32; --degraded: #f0a000; --starting: #1565c0; --restarting: #1565c0;
  --backoff: #e65100; --stopping: #5c6bc0; --terminating: #5c6bc0; --down: #8e0000;
  --failed: #d32f2f; --stopped: #757575; --removed: #9e9e9e; --unknown: #9e9e9e; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 12px; padding: 12px 20px;
  color: #fff; background: var(--unknown); }
header h1 { margin: 0; font-size: 18px; font-weight: 600; }
header .meta { opacity: 0.9; font-size: 12px; }
header.tree-running { background: var(--running); }
header.tree-degraded { background: var(--degraded); color: #1d2330; }
header.tree-failed { background: var(--failed); }
header.tree-starting { background: var(--starting); }
header.tree-stopping, header.tree-stopped { background: var(--stopped); }
#tree-state { font-weight: 700; text-transform: uppercase; letter-spacing: 0.05em;
  padding: 2px 10px; border-radius: 10px; background: rgba(0, 0, 0, 0.18); }
#problem { margin: 12px 20px 0; padding: 8px 12px; border-radius: 6px; color: #fff;
  background: var(--failed); }
.legend { display: flex; flex-wrap: wrap; gap: 10px; padding: 8px 20px 0; color: var(--muted);
  font-size: 12px; }
.legend span::before { content: ""; display: inline-block; width: 10px; height: 10px;
  margin-right: 4px; border-radius: 2px; background: var(--c); vertical-align: -1px; }
main { padding: 12px 20px 24px; }
.node { margin: 8px 0; padding: 8px 10px; border: 1px solid var(--line);
  border-left: 6px solid var(--c, var(--unknown)); border-radius: 6px; background: var(--card); }
.node.kind-supervisor { background: #fbfcfe; }
.state-running { --c: var(--running); } .state-degraded { --c: var(--degraded); }
.state-starting { --c: var(--starting); } .state-restarting { --c: var(--restarting); }
.state-backoff { --c: var(--backoff); } .state-stopping { --c: var(--stopping); }
.state-terminating { --c: var(--terminating); } .state-down { --c: var(--down); }
.state-failed { --c: var(--failed); } .state-stopped { --c: var(--stopped); }
.state-removed { --c: var(--removed); } .state-unknown { --c: var(--unknown); }
.head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px; }
.name { font-weight: 600; font-size: 15px; }
.path { color: var(--muted); font-family: ui-monospace, monospace; font-size: 12px; }
.badge { padding: 1px 8px; border-radius: 9px; font-size: 12px; white-space: nowrap; }
.badge.state { color: #fff; background: var(--c, var(--unknown)); }
.state-degraded > .head > .badge.state { color: #1d2330; }
.badge.kind { color: var(--muted); border: 1px solid var(--line); }
.badge.degraded { color: #1d2330; background: var(--degraded); }
.badge.breaker { border: 1px solid; }
.breaker-closed { color: var(--running); border-color: var(--running); }
.breaker-open { color: #fff; background: var(--failed); border-color: var(--failed); }
.breaker-half_open { color: #1d2330; background: var(--degraded); border-color: var(--degraded); }
.breaker-unknown { color: var(--muted); }
.stats { display: flex; flex-wrap: wrap; gap: 4px 16px; margin-top: 4px; color: var(--muted);
  font-size: 12px; }
.stats b { color: var(--fg); font-weight: 600; }
.error { margin: 6px 0 0; padding: 6px 8px; max-height: 8em; overflow: auto; white-space: pre-wrap;
  word-break: break-word; color: #7f1d1d; background: #fdecec; border-radius: 4px;
  font: 12px/1.35 ui-monospace, monospace; }
.children { margin-left: 18px; }
.fallbacks { margin: 6px 0 0 18px; padding-left: 8px; border-left: 2px dashed var(--line); }
.fallbacks > .label { color: var(--muted); font-size: 11px; text-transform: uppercase;
  letter-spacing: 0.05em; }
"""

_SCRIPT = """
"use strict";
(function () {
  const STATES = new Set(["starting", "running", "degraded", "restarting", "backoff",
    "stopping", "terminating", "down", "failed", "stopped", "removed"]);
  const BREAKERS = new Set(["closed", "open", "half_open"]);
  const KINDS = new Set(["agent", "supervisor", "fallback"]);
  const INTERVAL_MS = 1000;
  const token = new URLSearchParams(window.location.search).get("token");
  const headers = token ? { "Authorization": "Bearer " + token } : {};
  const treeUrl = new URL("tree", window.location.href);
  treeUrl.search = "";
  let updates = 0;

  function pick(value, allowed) { return allowed.has(value) ? value : "unknown"; }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  function stat(label, value, key) {
    const s = el("span", "stat", label + " ");
    s.dataset.stat = key;
    s.append(el("b", "", value));
    return s;
  }

  function ms(value) {
    if (typeof value !== "number") { return "\\u2013"; }
    return value < 10 ? value.toFixed(2) + " ms" : Math.round(value) + " ms";
  }

  function shortName(path) {
    const text = String(path);
    return text.slice(Math.max(text.lastIndexOf("/"), text.lastIndexOf("#")) + 1) || text;
  }

  function shownState(node) {
    if (node.kind !== "supervisor" && node.degraded && node.state === "running") {
      return "degraded";
    }
    return node.state;
  }

  function renderNode(node) {
    const state = pick(shownState(node), STATES);
    const kind = pick(node.kind, KINDS);
    const box = el("section", "node state-" + state + " kind-" + kind);
    box.dataset.path = String(node.path);
    box.dataset.state = state;
    box.dataset.restarts = String(node.restarts);
    const head = el("div", "head");
    head.append(el("span", "name", shortName(node.path)), el("span", "path", node.path));
    head.append(el("span", "badge state", node.state));
    if (kind !== "agent") { head.append(el("span", "badge kind", node.kind)); }
    if (node.degraded) { head.append(el("span", "badge degraded", "fallback answering")); }
    const stats = el("div", "stats");
    stats.append(stat("restarts", node.restarts, "restarts"));
    if (kind === "supervisor") {
      stats.append(stat("strategy", node.strategy, "strategy"));
      const max = node.max_restarts === null ? "\\u221e" : node.max_restarts;
      stats.append(stat("budget", node.budget_used + "/" + max + " in " + node.within_seconds
        + "s", "budget"));
      stats.append(stat("escalations", node.escalations, "escalations"));
    } else {
      const b = node.breaker;
      if (b) {
        const badge = el("span", "badge breaker breaker-" + pick(b.state, BREAKERS),
          "breaker " + b.state);
        badge.dataset.breaker = String(b.state);
        head.append(badge);
        stats.append(stat("breaker failures", b.failures + "/" + b.fail_max, "breaker"));
      }
      const limit = node.mailbox_limit === null ? "" : "/" + node.mailbox_limit;
      stats.append(stat("mailbox", node.mailbox_depth + limit, "mailbox"));
      stats.append(stat("processed", node.processed, "processed"));
      stats.append(stat("p99", ms(node.latency_p99_ms), "p99"));
      let failed = 0;
      for (const count of Object.values(node.failures || {})) { failed += Number(count) || 0; }
      stats.append(stat("failures", failed, "failures"));
      if (node.fallback_answers) {
        stats.append(stat("fallback answers", node.fallback_answers, "fallback_answers"));
      }
      if (node.busy) { stats.append(el("span", "stat busy", "busy")); }
    }
    box.append(head, stats);
    if (node.last_error) { box.append(el("pre", "error", node.last_error)); }
    if (node.fallbacks && node.fallbacks.length) {
      const fb = el("div", "fallbacks");
      fb.append(el("div", "label", "fallbacks"));
      for (const f of node.fallbacks) { fb.append(renderNode(f)); }
      box.append(fb);
    }
    if (node.children && node.children.length) {
      const children = el("div", "children");
      for (const c of node.children) { children.append(renderNode(c)); }
      box.append(children);
    }
    return box;
  }

  function problem(text) {
    const p = document.getElementById("problem");
    p.textContent = text || "";
    p.hidden = !text;
  }

  function render(data) {
    const state = pick(data.state, STATES);
    const header = document.getElementById("header");
    header.className = "tree-" + state;
    document.getElementById("root").textContent = String(data.root);
    document.getElementById("tree-state").textContent = String(data.state);
    let letters = 0;
    for (const count of Object.values(data.dead_letters || {})) {
      letters += Number(count) || 0;
    }
    document.getElementById("meta").textContent = "dead letters " + letters
      + " \\u00b7 updated " + new Date().toLocaleTimeString();
    document.getElementById("tree").replaceChildren(renderNode(data.tree));
    document.body.dataset.treeState = state;
    updates += 1;
    document.body.dataset.updates = String(updates);
  }

  async function refresh() {
    try {
      const resp = await fetch(treeUrl, { headers: headers, cache: "no-store" });
      if (resp.status === 401) {
        problem("unauthorised: open this page as /?token=<token>");
        return;
      }
      const data = await resp.json();
      if (!data || !data.tree) {
        problem("unexpected answer from the server (HTTP " + resp.status + ")");
        return;
      }
      render(data);
      problem(resp.ok ? "" : "the tree is not running (HTTP " + resp.status + ")");
    } catch (err) {
      problem("cannot reach the server: " + err);
    } finally {
      window.setTimeout(refresh, INTERVAL_MS);
    }
  }

  refresh();
})();
"""

_LEGEND = "".join(
    f'<span class="state-{s}">{s}</span>'
    for s in ("running", "degraded", "restarting", "backoff", "down", "failed", "stopped")
)

PAGE_HTML: bytes = (
    "<!doctype html>\n"
    '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    '<meta name="referrer" content="no-referrer">\n'
    '<link rel="icon" href="data:,">\n'
    "<title>hivekeeper tree</title>\n"
    f"<style>{_STYLE}</style>\n</head>\n<body>\n"
    '<header id="header" class="tree-unknown"><h1 id="root">hivekeeper</h1>'
    '<span id="tree-state">loading</span><span id="meta" class="meta"></span></header>\n'
    '<div id="problem" hidden></div>\n'
    f'<div class="legend">{_LEGEND}</div>\n'
    '<main id="tree"></main>\n'
    f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
).encode()


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Only this page's own inline script and style run; fetches go to its own origin only.
PAGE_CSP: str = (
    "default-src 'none'; "
    f"script-src {_sha256(_SCRIPT)}; "
    f"style-src {_sha256(_STYLE)}; "
    "connect-src 'self'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
