"""HTTP errors of the service and how each route family renders them.

Hugging Face Inference API routes answer ``{"error": "..."}`` (what ``huggingface_hub`` reads into its
exception message); OpenAI-compatible routes answer ``{"error": {"message", "type", "param", "code"}}``
(what the ``openai`` client reads).
"""

from __future__ import annotations

from typing import Any

#: OpenAI's error ``type`` per status family
_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 408: "invalid_request_error",
                 413: "invalid_request_error", 422: "invalid_request_error", 503: "service_unavailable"}


class ServeHTTPError(Exception):
    """An error the service answers with a status code and a message that says what to change."""

    def __init__(self, status: int, message: str, *, code: str = "", param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _default_code(status)
        self.param = param
        self.headers = dict(headers or {})


def _default_code(status: int) -> str:
    return {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
            413: "payload_too_large", 422: "invalid_input", 503: "unavailable"}.get(status, "server_error")


def error_body(path: str, exc: ServeHTTPError) -> dict[str, Any]:
    """The JSON body for ``exc`` in the dialect of the route at ``path``."""
    if path.startswith("/v1/"):
        return {"error": {"message": exc.message, "type": _OPENAI_TYPES.get(exc.status, "server_error"),
                          "param": exc.param, "code": exc.code}}
    return {"error": exc.message, "error_type": exc.code}


def bad_input(message: str, *, param: str | None = None) -> ServeHTTPError:
    """422: the request is well-formed JSON but its content is not acceptable."""
    return ServeHTTPError(422, message, code="invalid_input", param=param)
