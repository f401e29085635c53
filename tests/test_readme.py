"""The README's examples work as written.

Every ```python block in README.md runs on its own, in a fresh interpreter started in an
empty directory (so a missing import or a wrong name fails), unless the line right before its
fence is an explicit marker:

    <!-- readme-test: skip (the reason) -->

Only that marker skips a block, and the reason is reported. A block with a Ray agent
(`isolation="ray"`) needs the ray extra: without Ray it is skipped, unless
HIVEKEEPER_REQUIRE_RAY=1 (CI), where that fails. Every `hivekeeper check
MODULE:TREE` command shown with a real target exits 0, and every `hivekeeper run` target
shown is a valid tree, both through the installed `hivekeeper` command (as tests/test_cli.py
runs it), from outside the checkout.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
HIVEKEEPER = Path(sys.executable).with_name("hivekeeper")

SKIP_MARKER = re.compile(r"^<!--\s*readme-test:\s*skip\s*\((?P<reason>.+)\)\s*-->\s*$")
ANY_MARKER = re.compile(r"^\s*<!--\s*readme-test")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
# `hivekeeper check|run MODULE:TREE` with a concrete target (placeholders are upper case)
COMMAND = re.compile(r"hivekeeper (?P<command>check|run) (?P<target>[A-Za-z_][\w.]*:[A-Za-z_]\w*)")
PLACEHOLDERS = {"MODULE:TREE"}

BLOCK_TIMEOUT = 45.0  # seconds per block; each one takes about a second
CLI_TIMEOUT = 30.0


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None  # the marker's reason, if the block is marked


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block, with the skip marker on the line right before its fence."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"README line {start + 1}: unterminated code fence"
        marker = SKIP_MARKER.match(lines[start - 1]) if start > 0 else None
        blocks.append(
            Block(
                line=start + 1,
                lang=opening["lang"],
                code="\n".join(body) + "\n",
                skip=marker["reason"].strip() if marker else None,
            )
        )
        i += 1
    return blocks


TEXT = README.read_text(encoding="utf-8")
BLOCKS = readme_blocks(TEXT)
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python"]
COMMANDS = sorted(
    {(m["command"], m["target"]) for m in COMMAND.finditer(TEXT)}
    - {(c, p) for c in ("check", "run") for p in PLACEHOLDERS}
)


def _ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def test_the_readme_has_examples_and_few_skips():
    assert len(PYTHON_BLOCKS) >= 10
    skipped = [b for b in PYTHON_BLOCKS if b.skip]
    assert len(skipped) <= 2, [(b.line, b.skip) for b in skipped]


def test_every_skip_marker_sits_right_before_a_python_fence():
    """A marker anywhere else (a typo, a blank line in between, another language) would
    silently skip nothing; make it an error instead."""
    marked = {b.line - 1 for b in PYTHON_BLOCKS if b.skip}
    for number, line in enumerate(TEXT.splitlines(), start=1):
        if ANY_MARKER.search(line):
            assert SKIP_MARKER.match(line), f"README line {number}: malformed marker {line!r}"
            assert number in marked, f"README line {number}: marker not right before ```python"


@pytest.mark.timeout(BLOCK_TIMEOUT + 10)
@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"line{b.line}" for b in PYTHON_BLOCKS])
def test_readme_python_block_runs(block: Block, tmp_path: Path):
    if block.skip:
        pytest.skip(f"README line {block.line}: {block.skip}")
    if 'isolation="ray"' in block.code and not _ray_installed():
        if os.environ.get("HIVEKEEPER_REQUIRE_RAY") == "1":
            pytest.fail(f"README line {block.line} needs Ray (HIVEKEEPER_REQUIRE_RAY=1)")
        pytest.skip(f"README line {block.line}: needs the ray extra")
    script = tmp_path / f"readme_line_{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HK_"))}
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"README line {block.line}: still running after {exc.timeout}s")
    assert done.returncode == 0, (
        f"README block at line {block.line} exited {done.returncode}:\n{_tail(done.stderr)}"
    )


def test_the_readme_shows_check_commands():
    assert any(command == "check" for command, _ in COMMANDS), COMMANDS


@pytest.mark.parametrize(("command", "target"), COMMANDS, ids=[f"{c}-{t}" for c, t in COMMANDS])
def test_readme_tree_targets_pass_hivekeeper_check(command: str, target: str, tmp_path: Path):
    """`hivekeeper check TARGET` exits 0, run from an empty directory (so a target that only
    imports from inside the checkout, such as `examples.support_desk`, fails)."""
    assert HIVEKEEPER.exists(), f"no hivekeeper command next to {sys.executable}"
    done = subprocess.run(
        [str(HIVEKEEPER), "check", target],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"`hivekeeper check {target}` (shown with `{command}`) exited {done.returncode}: "
        f"{done.stderr.strip()}"
    )
    assert "ok:" in done.stdout
