"""Nothing secret reaches a log: not one ACS token, bearer token, raw client principal, access
key or connection string that this run's tests sent or received.

It runs after every other test of the run (marker ``run_last``) and reads every log the run
wrote: the stack's own (function host, ACS emulator, identity endpoint, OIDC issuer, Azurite,
Static Web Apps CLI) and every extra function host's, all in the run's log folder, which the
stack empties when a test run starts. A failure names the file, the line and the kind of
secret, never the secret itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import EXTRA_LOGS, SECRETS, run_log_dir
from tests.reliability.support import FIGURES

#: Shapes that are secret whatever their value: a JWT (header '{"' is base64 "eyJ"; base64 JSON
#: principals start the same way), keys inside connection strings, shared access signatures.
SHAPES = {
    "JWT or base64 JSON": re.compile(r"eyJ[A-Za-z0-9_-]{8,}"),
    "account or access key": re.compile(r"(?i)(accountkey|accesskey)=[^;\s]{8,}"),
    "shared access signature": re.compile(r"(?i)\bsig=[A-Za-z0-9%/+=]{16,}"),
    "bearer credential": re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/-]{20,}"),
}


def run_logs(stack: dict) -> list[Path]:
    folder = run_log_dir(stack)
    return sorted({*folder.rglob("*.log"), *(p for p in EXTRA_LOGS if p.exists())})


def problems_in(path: Path, secrets: frozenset[str]) -> tuple[int, list[str]]:
    """(lines read, one line per finding) for one log file."""
    found: list[str] = []
    lines = 0
    with open(path, "rb") as log:
        for number, raw in enumerate(log, 1):
            line = raw.decode("utf-8", "replace")
            lines += 1
            found += [f"{path.name}:{number}: a {kind}" for kind, shape in SHAPES.items() if shape.search(line)]
            if any(secret in line for secret in secrets):
                found.append(f"{path.name}:{number}: a token, key or principal this run used")
    return lines, found


@pytest.mark.run_last
def test_no_token_key_connection_string_or_principal_is_logged(stack: dict):
    logs = run_logs(stack)
    names = {p.name for p in logs}
    assert {"functions.log", "acs.log", "identity.log", "oidc.log"} <= names, f"the stack's logs are missing: {sorted(names)}"
    secrets = SECRETS.all()
    problems: list[str] = []
    lines = 0
    for path in logs:
        read, found = problems_in(path, secrets)
        lines += read
        problems += found
    FIGURES.log_lines_checked += lines
    FIGURES.secrets_checked = len(secrets)
    FIGURES.log_files_checked = len(logs)
    assert lines > 0, "no log was written by this run"
    assert not problems, "secrets in the logs:\n" + "\n".join(problems[:30])
