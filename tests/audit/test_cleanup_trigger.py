"""README, "Cleanup of deleted users": the timer function `cleanup_deleted_users` runs on
`CLEANUP_SCHEDULE` with `use_monitor`, never `run_on_startup` (a sweep on every cold start or
scale-out would run many at once). Read from function_app.py's decorator, as the Functions host
indexes it; no stack needed."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "function_app.py"


def test_the_sweep_runs_on_its_schedule_with_use_monitor_and_never_on_startup():
    tree = ast.parse(APP.read_text(encoding="utf-8"))
    [function] = [n for n in tree.body if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef) and n.name == "cleanup_deleted_users"]
    [timer] = [d for d in function.decorator_list
               if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "timer_trigger"]
    options = {k.arg: ast.literal_eval(k.value) for k in timer.keywords}
    assert options["schedule"] == "%CLEANUP_SCHEDULE%"
    assert options.get("run_on_startup", False) is False
    assert options.get("use_monitor") is True
