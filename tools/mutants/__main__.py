"""python -m tools.mutants [--only NAME,…] [--mutmut-seconds N] — see tools/mutants/__init__.py."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .mutations import MUTATIONS, Mutation

ROOT = Path(__file__).resolve().parents[2]
TABLE = "tests/README.md"
#: What mutmut may mutate, and the tests that judge each of its mutants (fast ones, through the stack).
MUTMUT_PATHS = ("shared/token_service.py", "shared/identity_store.py", "shared/cleanup.py")
MUTMUT_TESTS = (
    "tests/service/test_token_issue.py::test_first_call_creates_identity_and_returns_valid_token",
    "tests/service/test_token_issue.py::test_invalid_token_request_is_rejected_without_a_token",
    "tests/service/test_token_issue.py::test_a_recent_token_is_handed_out_again_and_no_cache_gets_a_new_one",
    "tests/service/test_token_issue.py::test_concurrent_first_calls_create_exactly_one_identity",
    "tests/service/test_identity_lifecycle.py",
    "tests/sweep/test_sweep_summary.py::test_summary_counts_deleted_already_gone_and_untouched_users",
)
#: mutmut lives in a virtual environment of its own (make mutants creates it), outside the app's.
MUTMUT_BIN = Path(os.environ.get("MUTMUT_BIN") or ROOT / ".devstack" / "mutmut-venv" / "bin" / "mutmut")
_NOT_COPIED = {".git", ".devstack", ".venv", "node_modules", "__pycache__", ".hypothesis", ".pytest_cache", "test-artifacts"}


def guarded_tests(table: str) -> dict[str, list[str]]:
    """Row id -> the backticked test node ids of tests/README.md's guarantee table."""
    rows: dict[str, list[str]] = {}
    for line in table.splitlines():
        match = re.match(r"\|\s*(G\d+)\s*\|", line)
        if match:
            rows[match.group(1)] = re.findall(r"`(tests/[^`]+\.py(?:::[^`]+)?)`", line.split("|")[-2])
    return rows


def tests_for(mutation: Mutation, rows: dict[str, list[str]]) -> list[str]:
    tests = [t for guard in mutation.guards for t in rows.get(guard, [])]
    if not tests:
        raise SystemExit(f"{mutation.name}: tests/README.md has no tests for {mutation.guards}")
    return list(dict.fromkeys(tests))


def stale(mutation: Mutation, root: Path) -> bool:
    return (root / mutation.file).read_text().count(mutation.anchor) != 1


# -- the outer process: a scratch copy and one local stack around the inner one ---------------------

def scratch_copy() -> Path:
    """The repository as it is now (tracked and new files), with the installed tools linked in."""
    target = Path(tempfile.mkdtemp(prefix="mutants-"))
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                                capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but state and tools
        listed = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                  if p.is_file() and not _NOT_COPIED & set(p.relative_to(ROOT).parts) and "web/dist" not in str(p)]
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for linked in (".venv", "node_modules", "web/dist"):
        if (ROOT / linked).exists():
            (target / linked).parent.mkdir(parents=True, exist_ok=True)
            (target / linked).symlink_to(ROOT / linked)
    return target


def outer(args: argparse.Namespace) -> int:
    scratch = scratch_copy()
    print(f"scratch copy: {scratch}", flush=True)
    env = {**os.environ, "DEVSTACK_PORT_OFFSET": str(args.offset), "MUTMUT_BIN": str(MUTMUT_BIN)}
    inner = [sys.executable, "-m", "tools.mutants", "--inner", "--mutmut-seconds", str(args.mutmut_seconds)]
    if args.only:
        inner += ["--only", args.only]
    if args.skip_named:
        inner += ["--skip-named"]
    try:
        return subprocess.call([sys.executable, "-m", "devstack.stack", "run", "--", *inner], cwd=scratch, env=env)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


# -- the inner process: runs inside the stack, in the scratch copy ------------------------------------

@dataclass
class Outcome:
    name: str
    result: str
    seconds: float
    detail: str = ""


def run_tests(stack: dict, tests: list[str], host_name: str, timeout: float) -> tuple[str, str]:
    """Start a function host on the code as it is now, run ``tests`` against it: PASSED, FAILED,
    HOST-FAILED or TIMEOUT, with the last lines of pytest's output."""
    sys.path.insert(0, str(Path.cwd()))
    from tests.conftest import FunctionHost, HostStartError

    try:
        host = FunctionHost(stack, {}, host_name)
    except HostStartError as error:
        return "HOST-FAILED", str(error)
    description = Path(stack["logDir"]) / f"{host_name}.stack.json"
    description.write_text(json.dumps({**stack, "functionHost": host.base}))
    env = {**os.environ, "LOCAL_STACK_FILE": str(description)}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=", "-rf", *tests]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED ")]
        tail = (failed[0] if failed else "\n".join(done.stdout.strip().splitlines()[-3:]))[:300]
        verdict = {0: "PASSED", 1: "FAILED"}.get(done.returncode, f"ERROR({done.returncode})")
    except subprocess.TimeoutExpired:
        verdict, tail = "TIMEOUT", ""
    finally:
        host.stop()
        description.unlink(missing_ok=True)
        host.log.unlink(missing_ok=True)  # a mutant's log (a logged token, say) must not reach the next run
    return verdict, tail


def missing_tests(tests: list[str]) -> list[str]:
    """The node ids pytest cannot find (a test renamed since the table was written)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *tests],
                          capture_output=True, text=True)
    return [t for t in tests if f"not found: {Path.cwd() / t.split('::')[0]}::{t.split('::', 1)[-1]}" in done.stdout + done.stderr
            or f"file or directory not found: {t.split('::')[0]}" in done.stdout + done.stderr]


def inner(args: argparse.Namespace) -> int:
    root = Path.cwd()
    stack = json.loads(Path(os.environ["LOCAL_STACK_FILE"]).read_text())
    rows = guarded_tests((root / TABLE).read_text())
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only.split(",")]
    started = time.monotonic()

    if args.skip_named:
        run_mutmut(args.mutmut_seconds)
        return 0
    fresh = [m for m in chosen if not stale(m, root)]
    baseline = sorted({t for m in fresh for t in tests_for(m, rows)})
    missing = missing_tests(baseline)
    if missing:
        print("tests/README.md names tests that do not exist (renamed?):\n  " + "\n  ".join(missing))
        return 2
    print(f"baseline: {len(baseline)} guarding tests on the unmutated code", flush=True)
    verdict, tail = run_tests(stack, baseline, "mutants-baseline", 1800)
    if verdict != "PASSED":
        print(f"the guarding tests fail without any mutation ({verdict}):\n{tail}")
        return 2

    outcomes: list[Outcome] = []
    for mutation in chosen:
        path = root / mutation.file
        if stale(mutation, root):
            outcomes.append(Outcome(mutation.name, "STALE", 0.0, f"anchor not found once in {mutation.file}"))
            print(f"STALE     {mutation.name}", flush=True)
            continue
        original = path.read_text()
        path.write_text(original.replace(mutation.anchor, mutation.replacement, 1))
        began = time.monotonic()
        try:
            verdict, tail = run_tests(stack, tests_for(mutation, rows), f"mutant-{mutation.name}", 600)
        finally:
            path.write_text(original)
        result = {"FAILED": "KILLED", "TIMEOUT": "KILLED", "PASSED": "SURVIVED"}.get(verdict, verdict)
        outcomes.append(Outcome(mutation.name, result, time.monotonic() - began, verdict if verdict != "FAILED" else ""))
        print(f"{result:<9} {mutation.name} ({', '.join(mutation.guards)}; {time.monotonic() - began:.0f} s)"
              f"{' ' + verdict if verdict not in ('FAILED', 'PASSED') else ''}", flush=True)
        if tail and result == "KILLED":
            print(f"          {tail.splitlines()[0]}", flush=True)

    counts = {r: sum(o.result == r for o in outcomes) for r in ("KILLED", "SURVIVED", "STALE")}
    print(f"\nnamed mutations: {len(outcomes)}: {counts['KILLED']} killed, {counts['SURVIVED']} survived, "
          f"{counts['STALE']} stale, {len(outcomes) - sum(counts.values())} errors "
          f"({time.monotonic() - started:.0f} s)", flush=True)
    for outcome in outcomes:
        if outcome.result != "KILLED":
            print(f"  {outcome.result}: {outcome.name} {outcome.detail}")

    if args.mutmut_seconds > 0:
        run_mutmut(args.mutmut_seconds)
    return 0 if counts["KILLED"] == len(outcomes) else 1


# -- mutmut --------------------------------------------------------------------------------------------

def run_mutmut(budget: float) -> None:
    """mutmut's own mutants of MUTMUT_PATHS, each judged by MUTMUT_TESTS through a function host on
    the mutated code, for at most ``budget`` seconds; then its list of survivors."""
    mutmut = MUTMUT_BIN
    if not mutmut.exists():
        print(f"\nmutmut: not installed ({mutmut}); `make mutants` installs it")
        return
    runner = f"{sys.executable} -m tools.mutants --judge"
    command = [str(mutmut), "run", "--paths-to-mutate", ",".join(MUTMUT_PATHS), "--runner", runner,
               "--tests-dir", "tests", "--no-progress", "--simple-output"]
    print(f"\nmutmut: {', '.join(MUTMUT_PATHS)} for at most {budget:.0f} s, each mutant judged by {', '.join(MUTMUT_TESTS)}",
          flush=True)
    try:
        subprocess.run(command, timeout=budget, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        print("mutmut: time budget spent", flush=True)
    results = subprocess.run([str(mutmut), "results"], capture_output=True, text=True).stdout
    print(results.strip() or "mutmut: no results")
    survived = results.split("Survived", 1)[-1].split("Untested", 1)[0] if "Survived" in results else ""
    numbers: list[int] = []
    for low, high in re.findall(r"(?<![\d(])(\d+)(?:-(\d+))?(?![\d)])", "\n".join(
            line for line in survived.splitlines() if not line.startswith("----"))):
        numbers += range(int(low), int(high or low) + 1)
    for number in numbers[:60]:
        shown = subprocess.run([str(mutmut), "show", str(number)], capture_output=True, text=True).stdout
        print(f"survivor {number}:\n{shown.strip()}")


def judge() -> int:
    """mutmut's runner: 0 when the tests pass on the code as it now is (the mutant survived)."""
    stack = json.loads(Path(os.environ["LOCAL_STACK_FILE"]).read_text())
    verdict, _ = run_tests(stack, list(MUTMUT_TESTS), "mutmut-judge", 600)
    return 0 if verdict == "PASSED" else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mutants", description=__doc__)
    parser.add_argument("--only", help="comma-separated mutation names")
    parser.add_argument("--mutmut-seconds", type=float, default=0, help="time budget for mutmut (0: skip it)")
    parser.add_argument("--offset", type=int, default=int(os.environ.get("DEVSTACK_PORT_OFFSET", "900") or 900),
                        help="port offset of the local stack the check starts")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    parser.add_argument("--skip-named", action="store_true", help="only the mutmut part")
    parser.add_argument("--list", action="store_true", help="list the mutations and the tests that guard each")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--judge", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.list:
        rows = guarded_tests((ROOT / TABLE).read_text())
        for m in MUTATIONS:
            print(f"{'STALE ' if stale(m, ROOT) else ''}{m.name}: {m.why}\n    " + "\n    ".join(tests_for(m, rows)))
        return 0
    if args.judge:
        return judge()
    if args.inner:
        return inner(args)
    return outer(args)


if __name__ == "__main__":
    sys.exit(main())
