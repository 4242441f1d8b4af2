"""An azure-core pipeline policy that counts every HTTP answer of a dependency, retries included.

A 429 that azure-core's retry policy waited out never reaches the caller, so the call's outcome
says "success"; this policy runs once per attempt (``per_retry_policies``), so operators still
see how often ACS paced the service. Imported when an SDK client is built, not at app import.
"""

from __future__ import annotations

from typing import Any

from azure.core.pipeline.policies import SansIOHTTPPolicy

from . import dependency_answered


class AnswerCounter(SansIOHTTPPolicy):  # type: ignore[type-arg]
    def __init__(self, dependency: str) -> None:
        self._dependency = dependency

    def on_response(self, request: Any, response: Any) -> None:
        dependency_answered(self._dependency, response.http_response.status_code)
