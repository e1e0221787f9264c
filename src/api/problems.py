"""RFC 9457 problem details: every error leaves as ``application/problem+json``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from closedloop.domain.errors import (
    ConcurrencyConflict,
    DomainError,
    InvalidValue,
    NotFound,
    RuleViolation,
)

log = logging.getLogger("closedloop.api")

PROBLEM_JSON = "application/problem+json"


class ApiProblem(Exception):
    """An HTTP-level refusal (authentication, permission, preconditions, idempotency)."""

    def __init__(
        self,
        status: int,
        type_: str,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    request: Request,
    status: int,
    type_: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"urn:closedloop:problem:{type_}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    headers = dict(headers or {})
    correlation_id = getattr(request.state, "correlation_id", None)
    if correlation_id:
        body["correlation_id"] = correlation_id
        # Also here: a 500 is answered outside the middleware that sets it on other responses.
        headers["X-Request-ID"] = correlation_id
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, int | float | bool | type(None)) else str(v)
        for k, v in values.items()
    }


async def _domain_error(request: Request, error: Exception) -> JSONResponse:
    if isinstance(error, NotFound):
        return problem_response(request, 404, "not-found", "Not found", str(error), rule=error.rule)
    if isinstance(error, ConcurrencyConflict):
        precondition = request.headers.get("if-match") is not None
        return problem_response(
            request,
            412 if precondition else 409,
            "precondition-failed" if precondition else "concurrency-conflict",
            "Version precondition failed" if precondition else "Concurrent change",
            str(error),
            rule=error.rule,
            expected_version=error.expected_version,
            current_version=error.actual_version,
        )
    if isinstance(error, InvalidValue):
        # Domain fields are named as in the request body, like pydantic's "body.<field>".
        field = f"body.{error.values.get('field', '')}"
        return problem_response(
            request,
            422,
            "invalid-field",
            "Invalid field",
            str(error),
            rule=error.rule,
            errors=[
                {
                    "field": field,
                    "rule": str(error.values.get("rule", error.rule)),
                    "message": str(error),
                }
            ],
        )
    if isinstance(error, RuleViolation):
        return problem_response(
            request,
            409,
            "rule-violation",
            "Rule of the loop violated",
            str(error),
            rule=error.rule,
            values=_jsonable(error.values),
        )
    assert isinstance(error, DomainError)
    return problem_response(request, 409, "domain-error", "Refused", str(error), rule=error.rule)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(part) for part in item["loc"]),
            "rule": item["type"],
            "message": item["msg"],
        }
        for item in error.errors()
    ]
    fields = ", ".join(e["field"] for e in errors)
    return problem_response(
        request, 422, "invalid-field", "Invalid field", f"invalid input in {fields}", errors=errors
    )


async def _api_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiProblem)
    return problem_response(
        request,
        error.status,
        error.type,
        error.title,
        error.detail,
        headers=error.headers,
        **error.extra,
    )


async def _http_exception(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    return problem_response(
        request,
        error.status_code,
        "http",
        str(error.detail),
        str(error.detail),
        headers=dict(error.headers or {}),
    )


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception(
        "unhandled error (correlation_id=%s)", getattr(request.state, "correlation_id", None)
    )
    return problem_response(
        request,
        500,
        "internal",
        "Internal error",
        "the server failed; the error is logged with this correlation id",
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
