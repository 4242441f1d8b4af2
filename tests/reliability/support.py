"""What the reliability tests share: the error contract they check every response against, the
figures they report at the end of a run, and every secret they handled (so the log test can
prove none of them was written down)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.conftest import SECRETS as _SECRETS

#: Statuses the API may answer with an error (API.md, "Errors").
ERROR_STATUSES = frozenset({400, 401, 403, 404, 413, 429, 503})


@dataclass
class Figures:
    """Counts a reader of the README can quote; printed at the end of the run."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: int = 0
    tokens_issued_to_malformed_requests: int = 0
    orphans_found: int = 0
    faults_survived: list[str] = field(default_factory=list)
    throttled_requests: int = 0
    log_lines_checked: int = 0
    log_files_checked: int = 0
    secrets_checked: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, category: str, response: requests.Response) -> None:
        with self._lock:
            self.cases[category] += 1
            self.statuses[response.status_code] += 1
            if response.status_code >= 500:
                self.server_errors += 1

    def survived(self, fault: str) -> None:
        with self._lock:
            self.faults_survived.append(fault)

    def as_json(self) -> dict[str, Any]:
        return {
            "malformedCases": sum(self.cases.values()),
            "casesByCategory": dict(sorted(self.cases.items())),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "serverErrors": self.server_errors,
            "tokensIssuedToMalformedRequests": self.tokens_issued_to_malformed_requests,
            "orphansFound": self.orphans_found,
            "faultsSurvived": self.faults_survived,
            "throttledRequests": self.throttled_requests,
            "logLinesChecked": self.log_lines_checked,
            "logFilesChecked": self.log_files_checked,
            "secretsChecked": self.secrets_checked,
        }

    def summary(self) -> str:
        return (
            f"reliability: {sum(self.cases.values())} malformed requests, {self.server_errors} answered 5xx, "
            f"{self.tokens_issued_to_malformed_requests} tokens issued to them; {self.orphans_found} orphan identities; "
            f"{len(self.faults_survived)} dependency faults survived; {self.throttled_requests} requests throttled; "
            f"{self.log_lines_checked} lines of {self.log_files_checked} logs free of {self.secrets_checked} secrets"
        )


FIGURES = Figures()


#: Every secret this run handled (kept in tests/conftest.py, which also records what Api sends).
SECRETS = _SECRETS


def error_body(response: requests.Response) -> dict[str, str]:
    """The ``{"error": {"code", "message"}}`` of an error response, asserting its shape."""
    assert response.status_code in ERROR_STATUSES, f"unexpected status {response.status_code}: {response.text[:200]}"
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert "Traceback" not in error["message"] and "eyJ" not in error["message"], error
    if response.status_code in (429, 503):
        assert int(response.headers["Retry-After"]) >= 1, response.headers
    if response.status_code == 401:
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), response.headers
    return error


def issued_tokens(response: requests.Response) -> list[str]:
    """Any token a response hands out (there should be none for a malformed request)."""
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return []  # the API hands out tokens only as JSON; other bodies fail the error-shape check
    body = response.json()
    found = []
    if isinstance(body, dict) and isinstance(body.get("token"), str):
        found.append(body["token"])
    elif "eyJ" in response.text:
        found.append("<jwt-looking text>")
    return found


def write_figures(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(FIGURES.as_json(), indent=2) + "\n")
