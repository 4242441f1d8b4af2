"""F5 in VS Code: the "Attach to Python Functions" launch configuration, the task that starts the
stack for it, and a breakpoint in shared/ stopping a real request.

What is exercised for real: the function host started with the command line devstack/stack.py
gives it and the environment of the launch configuration's preLaunchTask, debugpy listening
inside it, a DAP client attaching as VS Code does (initialize, attach, setBreakpoints,
configurationDone), a request sent to the host stopping on the breakpoint, and the request then
finishing with the answer the undebugged host gives. What is not: VS Code itself, and `make dev`
(which would rebuild web/ and start a whole second stack); the task's command is checked to be
`make dev`, whose recipe runs devstack.stack, which hands its environment to the host.
Core Tools (`func start`) reads the same setting but cannot be installed here, so that path is
not tested.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
import requests

from devstack.funchost.debugging import SETTING, DebugListener, DebugSettingError, parse_worker_arguments
from tests.conftest import FunctionHost, free_port, new_user, record_secrets
from tests.devtools.dap import DapClient

ROOT = Path(__file__).resolve().parents[2]
VSCODE = ROOT / ".vscode"


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _attach_configuration() -> dict:
    launch = _json(VSCODE / "launch.json")
    return next(c for c in launch["configurations"] if c["name"] == "Attach to Python Functions")


def _task(label: str) -> dict:
    return next(t for t in _json(VSCODE / "tasks.json")["tasks"] if t["label"] == label)


def _breakpoint_line(path: Path, function: str, inner: str) -> int:
    """The first statement of ``inner`` nested in ``function``: found by parsing, not by a line
    number, so edits elsewhere in the module do not move the breakpoint off its target."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            for child in ast.walk(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and child.name == inner:
                    return child.body[0].lineno
    raise AssertionError(f"{path} has no {function}.{inner} to put the breakpoint in")


# -- the configuration files -------------------------------------------------------------------


def test_f5_attaches_where_the_pre_launch_task_makes_the_host_listen():
    attach = _attach_configuration()
    assert attach["type"] == "debugpy" and attach["request"] == "attach"
    task = _task(attach["preLaunchTask"])
    listener = parse_worker_arguments(task["options"]["env"][SETTING])
    assert listener == DebugListener(attach["connect"]["host"], attach["connect"]["port"], wait_for_client=False)
    assert listener.port == 9091  # the Azure Functions extension's Python debug port
    # The task starts the stack the README documents, and VS Code attaches once the stack says
    # it is up (a background task's endsPattern), with the very line devstack.stack prints.
    assert task["command"] == "make dev" and task["isBackground"] is True
    ends = task["problemMatcher"]["background"]["endsPattern"]
    stack_source = (ROOT / "devstack" / "stack.py").read_text(encoding="utf-8")
    printed = re.findall(r'print\("\\n?(Local stack is up:)"\)', stack_source)
    assert printed and re.match(ends, printed[0])
    recipe = re.search(r"^dev:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe and "-m devstack.stack up" in recipe.group(1)


def test_tasks_run_the_two_documented_commands():
    assert _task("make dev")["command"] == "make dev"
    test_task = _task("make test")
    assert test_task["command"] == "make test" and test_task["group"] == {"kind": "test", "isDefault": True}


def test_editor_settings_pick_the_project_venv_and_pytest():
    settings = _json(VSCODE / "settings.json")
    assert settings["python.defaultInterpreterPath"] == "${workspaceFolder}/.venv/bin/python"
    assert settings["python.testing.pytestEnabled"] is True
    recommended = set(_json(VSCODE / "extensions.json")["recommendations"])
    assert {"ms-python.python", "ms-python.debugpy", "ms-azuretools.vscode-azurefunctions", "humao.rest-client"} <= recommended


# -- the setting the host reads ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-m debugpy --listen 127.0.0.1:9091", DebugListener("127.0.0.1", 9091)),
        ("-m debugpy --listen 9091", DebugListener("127.0.0.1", 9091)),
        ("-m debugpy --listen=0.0.0.0:5678 --wait-for-client", DebugListener("0.0.0.0", 5678, True)),
        # the Python extension's remote launcher form (a path to the debugpy folder)
        ("/home/me/.vscode/extensions/ms-python.debugpy/bundled/libs/debugpy --listen 127.0.0.1:9091",
         DebugListener("127.0.0.1", 9091)),
        ("", None),
        (None, None),
    ],
)
def test_debugger_setting_is_read_as_core_tools_passes_it_to_the_worker(value, expected):
    assert parse_worker_arguments(value) == expected


@pytest.mark.parametrize("value", ["-X dev", "-m debugpy", "-m debugpy --listen 127.0.0.1:notaport",
                                   "-m debugpy --listen 70000", "-m debugpy --listen 9091 --configure-x 1", "'unclosed"])
def test_debugger_setting_that_cannot_be_honoured_is_an_error_naming_the_setting(value):
    with pytest.raises(DebugSettingError, match=SETTING):
        parse_worker_arguments(value)


def test_host_refuses_to_start_when_the_debugger_setting_cannot_be_honoured(stack: dict, tmp_path: Path):
    env = {**os.environ, SETTING: "-m pdb"}
    result = subprocess.run(
        [sys.executable, "-m", "devstack.funchost", "--app-dir", str(ROOT), "--port", str(free_port()),
         "--settings", stack["functionSettingsFile"]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert SETTING in result.stdout + result.stderr


# -- a breakpoint hit by a real request -------------------------------------------------------


class DebuggedHost:
    """The function host as `make dev (debug)` starts it: the stack's command line for the host
    (tests.conftest.FunctionHost runs the same one), plus the task's environment with the debug
    port moved to a free one."""

    def __init__(self, stack: dict, task_env: dict[str, str]) -> None:
        self.debug_port = free_port()
        listener = parse_worker_arguments(task_env[SETTING])
        arguments = task_env[SETTING].replace(f"{listener.host}:{listener.port}", f"{listener.host}:{self.debug_port}")
        # languageWorkers__python__defaultExecutablePath is a ${workspaceFolder} path, for Core Tools only.
        overrides = {k: v for k, v in task_env.items() if k != "languageWorkers__python__defaultExecutablePath"}
        self.host = FunctionHost(stack, {**overrides, SETTING: arguments}, "debugged")
        self.base = self.host.base
        assert f"listening on {listener.host}:{self.debug_port}" in self.host.log_text()

    def stop(self) -> None:
        self.host.stop()


@pytest.fixture(scope="module")
def debugged_host(stack: dict) -> Iterator[DebuggedHost]:
    task = _task(_attach_configuration()["preLaunchTask"])
    host = DebuggedHost(stack, task["options"]["env"])
    yield host
    host.stop()


def test_breakpoint_in_shared_stops_a_request_and_the_request_then_completes(debugged_host: DebuggedHost, api, stack):
    source = ROOT / "shared" / "api.py"
    line = _breakpoint_line(source, "get_identity", "work")
    attach = _attach_configuration()
    client = DapClient("127.0.0.1", debugged_host.debug_port)
    try:
        client.request("initialize", clientID="vscode", adapterID="debugpy", pathFormat="path",
                       linesStartAt1=True, columnsStartAt1=True)
        attach_seq = client.send("attach", justMyCode=attach["justMyCode"], subProcess=False)
        client.event("initialized")
        placed = client.request("setBreakpoints", source={"path": str(source)}, breakpoints=[{"line": line}])
        assert placed["body"]["breakpoints"][0]["line"] == line
        client.request("configurationDone")
        client.response(attach_seq)

        user = new_user()
        answer: dict[str, requests.Response] = {}
        record_secrets(user.headers)
        caller = threading.Thread(
            target=lambda: answer.setdefault("response", requests.get(f"{debugged_host.base}/api/identity",
                                                                      headers=user.headers, timeout=120)))
        caller.start()
        stopped = client.event("stopped")
        assert stopped["body"]["reason"] == "breakpoint"
        # The host's one event loop is paused on the breakpoint, so the request cannot have been answered.
        assert "response" not in answer
        frames = client.request("stackTrace", threadId=stopped["body"]["threadId"], levels=1)["body"]["stackFrames"]
        assert Path(frames[0]["source"]["path"]).resolve() == source.resolve() and frames[0]["line"] == line
        seen = client.request("evaluate", expression="(req.method, req.url)", frameId=frames[0]["id"], context="watch")
        assert seen["body"]["result"] == repr(("GET", f"{debugged_host.base}/api/identity"))

        client.request("continue", threadId=stopped["body"]["threadId"])
        caller.join(120)
        response = answer["response"]
    finally:
        client.close()
    # Debugged or not, the host answers the same: a new user has no identity yet.
    expected = api.call("GET", "/api/identity", user)
    assert (response.status_code, response.json()) == (expected.status_code, expected.json())
