"""One browser walk-through: a node script (playwright-core driving Debian's Chromium) that checks
each outcome on the page and at the local stack, and reports what it saw as JSON on its last
line. The tests read that report, one behaviour each."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Another running stack can be named with LOCAL_STACK_FILE.
STACK_FILE = Path(os.environ.get("LOCAL_STACK_FILE", REPO_ROOT / "local.stack.json"))
ARTIFACTS = REPO_ROOT / "test-artifacts" / "e2e"
CHROMIUM = Path("/usr/bin/chromium")


def local_stack() -> dict[str, Any]:
    """The running stack's description, once the stack, Chromium and node are all there."""
    if not STACK_FILE.exists():
        pytest.fail("the local stack is not running (local.stack.json is missing): run the tests with `make test`")
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get update && apt-get install -y chromium")
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH")
    return json.loads(STACK_FILE.read_text(encoding="utf-8"))


def walk(script: str, *arguments: str, timeout: float) -> dict[str, Any]:
    """Run tests/e2e/``script`` against the stack and return its report, with its exit code and
    the end of what it wrote to stderr (for a failure's message)."""
    done = subprocess.run(
        ["node", str(Path(__file__).with_name(script)), "--stack", str(STACK_FILE), "--artifacts", str(ARTIFACTS), *arguments],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )
    try:
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        pytest.fail(f"{script} reported nothing (exit {done.returncode}):\n{done.stderr[-4000:]}")
    report["exitCode"] = done.returncode
    report["stderr"] = done.stderr[-4000:]
    return report


def reached(report: dict[str, Any], step: str) -> dict[str, Any]:
    """What the walk-through saw at ``step``; fails with where it stopped if it never got there."""
    for seen in report["steps"]:
        if seen["name"] == step:
            return seen
    pytest.fail(f"the walk-through stopped before '{step}': {report.get('error')}\n"
                f"screenshots: {report.get('screenshots')}\n{report['stderr']}")
