"""Nothing secret reaches the function host's log: not one ACS token, bearer token, raw client
principal, access key or connection string that this run's tests sent or received.

It reads what every function host of this run (the stack's and the ones tests started) wrote
since the run began, so it belongs after the other reliability tests (pytest runs files in name
order). A failure names the kind of secret and the line, never the secret itself.
"""

from __future__ import annotations

import re

from tests.reliability.support import FIGURES, LOG_FILES, SECRETS

#: Shapes that are secret whatever their value: a JWT (header '{"' is base64 "eyJ"; base64 JSON
#: principals start the same way), keys inside connection strings, shared access signatures.
_SHAPES = {
    "JWT or base64 JSON": re.compile(r"eyJ[A-Za-z0-9_-]{8,}"),
    "account or access key": re.compile(r"(?i)(accountkey|accesskey)=[^;\s]{8,}"),
    "shared access signature": re.compile(r"(?i)\bsig=[A-Za-z0-9%/+=]{16,}"),
    "bearer credential": re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/-]{20,}"),
}


def _this_runs_log_text() -> list[tuple[str, str]]:
    texts = []
    for path, start in LOG_FILES.items():
        if path.exists():
            with open(path, "rb") as log:
                log.seek(start)
                texts.append((path.name, log.read().decode("utf-8", "replace")))
    return texts


def test_no_token_key_connection_string_or_principal_is_logged():
    logs = _this_runs_log_text()
    secrets = SECRETS.all()
    assert logs and any(text for _, text in logs), "no function host log was written by this run"
    problems = []
    lines = 0
    for name, text in logs:
        for number, line in enumerate(text.splitlines(), 1):
            lines += 1
            problems += [f"{name}:{number}: a {kind}" for kind, shape in _SHAPES.items() if shape.search(line)]
            if any(secret in line for secret in secrets):
                problems.append(f"{name}:{number}: a token, key or principal this run used")
    FIGURES.log_lines_checked += lines
    FIGURES.secrets_checked = len(secrets)
    assert not problems, "secrets in the function host log:\n" + "\n".join(problems[:20])
