"""Every error the API answers is JSON of one shape, {"error": what kind, "detail": what
was expected, what came and what to do}, with the status that says whose fault it is.
That holds for our own refusals, for FastAPI's validation errors (422), for routes that
do not exist (404/405) and for a failure nobody expected (500, details in the server's
log only). The Open Inference Protocol's error body is {"error": ...}: ours is a superset.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    error: str
    detail: str
    evidence: list[str] | None = None  # a production promotion that needs confirming: what is known
    rejected: list[dict[str, str]] | None = None  # a dataset with nothing usable: each item and why


class ApiError(StarletteHTTPException):
    """A refusal with its JSON body. Raise it from a route, a dependency or a request
    body's stream; the handler below answers it."""

    def __init__(
        self, status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.error, self.extra = error, extra

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail, **self.extra}


_KIND = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    413: "payload too large",
    415: "unsupported media type",
    422: "invalid request",
    429: "rate limited",
    503: "unavailable",
}
_DOC = {
    400: "The body, its image or its zip is malformed (a truncated PNG, a member path that climbs out)",
    401: "No key, or a key that is unknown or revoked",
    403: "The key lacks the scope this route needs",
    404: "No such model, version, channel, job or dataset",
    409: "A conflict: the store refuses the move (production without confirm=true, no store, already there), "
    "the job has finished already, the dataset is in use",
    413: "The body, the image or the zip (members, sizes) is larger than the server accepts",
    415: "Not multipart/form-data, not a PNG, JPEG or TIFF of 8/16-bit grey or RGB, or not a zip",
    422: "A field is missing or has the wrong type, an argument is not allowed, or nothing in a dataset is usable",
    429: "This key's rate limit is spent; retry after Retry-After seconds",
    503: "The model store cannot be reached, nothing is served yet, or too many jobs wait",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error statuses a route answers."""
    return {code: {"model": ErrorBody, "description": _DOC[code]} for code in codes}


def error_response(status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, ApiError):
            return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /docs for the routes"
        elif exc.status_code == 400 and detail == "There was an error parsing the body":  # FastAPI's words
            detail = "the body could not be parsed: send a JSON object (Content-Type: application/json)"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs"
        kind = _KIND.get(exc.status_code, "error")
        return error_response(exc.status_code, kind, detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(part) for part in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
        ]
        return error_response(422, _KIND[422], "; ".join(problems) or "invalid request")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc, exc_info=exc)
        return error_response(500, "internal error", "the server failed on this request; its log says why")
