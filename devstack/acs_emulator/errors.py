"""The ACS error shape: ``{"error": {"code", "message", "target"?}}`` with the service's status."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An error the emulated service answers with; raised anywhere in a request, rendered once."""

    def __init__(
        self, status: int, code: str, message: str, *, target: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.retry_after = retry_after

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return web.json_response({"error": error}, status=self.status, headers=headers)


def denied(message: str = "Denied by the resource provider.") -> ApiError:
    return ApiError(401, "Denied", message)


def validation(message: str, target: str | None = None) -> ApiError:
    return ApiError(400, "ValidationError", message, target=target)
