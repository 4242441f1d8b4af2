"""The ACS error shape: ``{"error": {"code", "message", "target"?}}`` with the service's status."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An error the emulated service answers with; raised anywhere in a request, rendered once."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        retry_after: int | None = None,
        lists_versions: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.retry_after = retry_after
        #: Real ACS leaves out api-supported-versions on its "field is required" 400s and on 401
        #: InvalidAccessToken (../acs-recordings: the Teams exchange sessions).
        self.lists_versions = lists_versions

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        # Errors are "application/json" without a charset, successes carry "; charset=utf-8" (recorded).
        return web.Response(
            body=json.dumps({"error": error}).encode(), status=self.status, headers=headers, content_type="application/json"
        )


def denied(message: str = "Denied by the resource provider.") -> ApiError:
    return ApiError(401, "Denied", message)


def validation(message: str, target: str | None = None, *, lists_versions: bool = True) -> ApiError:
    return ApiError(400, "ValidationError", message, target=target, lists_versions=lists_versions)
