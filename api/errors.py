"""Every error as `application/problem+json` (RFC 9457): type, title, status, detail.

Status codes, chosen once here:

| error | status |
|---|---|
| no valid token: missing, unknown, expired, revoked | 401 + `WWW-Authenticate: Bearer` |
| role not allowed (`Forbidden`) | 403 |
| unknown patient, user, token or pathway; a patient of another site | 404 |
| `HardBlock`: a safety rule refuses the order | 422 + `rule_ids`, `sources`, `block_id` |
| `InvalidInput`, `UnknownCode`, request validation, Idempotency-Key reused | 422 |
| `EventNotAllowed` in the current state, `ConcurrencyConflict`, duplicate record | 409 |
| `If-Match` or `expected_version` is not the patient's version (`StaleVersion`) | 412 |
| anything unexpected | 500, a fixed sentence and no internals (logged without PHI) |

A refused order is 422, not 409: the request is well formed but the guideline forbids it for
this patient, and reloading and retrying will not help; 409 is kept for "someone else changed
the patient" and "the state does not allow this now".
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.refusals import audit_if_refused
from engine.domain.errors import (
    ConcurrencyConflict,
    DomainError,
    EventNotAllowed,
    HardBlock,
    InvalidInput,
    StaleVersion,
    UnknownCode,
    UnknownPatient,
    UnknownWorkItem,
)
from engine.services.access import NotAuthenticated, UnknownUser
from engine.services.access_policy import Forbidden  # the policy's refusal: 403

PROBLEM = "application/problem+json"
TYPE_BASE = "https://aih-pathways.example/problems/"
log = logging.getLogger("aihp.api")


class NotFound(DomainError):
    """No such resource (a pathway version, ...)."""

    code = "not-found"


class PreconditionFailed(DomainError):
    """`If-Match` names a version the patient is no longer at."""

    code = "precondition-failed"


#: Every domain error, the most specific class first: its HTTP status, the problem's title
#: (native API and pages) and the FHIR issue type (OperationOutcome). One table for every
#: surface, so an error answers with the same status wherever it is raised.
STATUS: list[tuple[type[DomainError], int, str, str]] = [
    (NotAuthenticated, 401, "Not authenticated", "login"),
    (Forbidden, 403, "Forbidden", "forbidden"),
    (UnknownPatient, 404, "Unknown patient", "not-found"),
    (UnknownWorkItem, 404, "Unknown work item", "not-found"),
    (UnknownUser, 404, "Not found", "not-found"),
    (NotFound, 404, "Not found", "not-found"),
    (HardBlock, 422, "Refused by a safety rule", "business-rule"),
    (PreconditionFailed, 412, "Precondition failed", "conflict"),
    (StaleVersion, 412, "Precondition failed", "conflict"),
    (ConcurrencyConflict, 409, "Conflict", "conflict"),
    (EventNotAllowed, 409, "Not allowed in the current state", "business-rule"),
    (UnknownCode, 422, "Unknown code", "code-invalid"),
    (InvalidInput, 422, "Invalid input", "invalid"),
    (DomainError, 422, "Refused", "processing"),
]


def status_of(error: DomainError) -> tuple[int, str, str]:
    """(HTTP status, problem title, FHIR issue type) of a domain error, from STATUS."""
    return next((s, t, c) for cls, s, t, c in STATUS if isinstance(error, cls))


def status_of_code(error_code: str) -> tuple[int, str, str]:
    """The same for a refusal known only by its error code (an item of a batch answer)."""
    return next(
        ((s, t, c) for cls, s, t, c in STATUS if cls.code == error_code),
        (422, "Refused", "processing"),
    )


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each a problem+json document; every route
    can also answer 400 (unreadable body), 401, 422 (invalid request) and 500."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        s: {"description": HTTPStatus(s).phrase, "content": {PROBLEM: {"schema": schema}}}
        for s in sorted({400, 401, 422, 500, *statuses})
    }


def problem(
    status: int,
    title: str,
    detail: str,
    code: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response."""
    body = {"type": TYPE_BASE + code, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def domain_problem(error: DomainError) -> JSONResponse:
    """The problem for a domain error, by the most specific class in STATUS."""
    status, title, _ = status_of(error)
    extra: dict[str, Any] = {}
    if isinstance(error, HardBlock):
        extra = {
            "block_id": error.block_id,
            "rule_ids": list(error.rule_ids),
            "sources": list(error.sources),
            "overridable": error.overridable,
        }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return problem(status, title, error.message, error.code, headers, **extra)


FIELD_NAME = re.compile(r"^[A-Za-z0-9_.$@-]{1,64}$")


def _place(loc: Any) -> list[str]:
    """Where in the request: field names and indexes, without pydantic's union-member tags
    (`function-after[functools.partial(<function ... at 0x...>)]` says nothing to a client)."""
    return [str(part) for part in loc if isinstance(part, int) or FIELD_NAME.match(str(part))]


def install(app: FastAPI) -> None:
    """Register the handlers on the app."""

    @app.exception_handler(DomainError)
    async def _domain(request: Request, error: DomainError) -> JSONResponse:
        await run_in_threadpool(audit_if_refused, request, error, "api")
        return domain_problem(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": _place(e.get("loc", ())), "msg": e.get("msg", ""), "type": e["type"]}
            for e in error.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid"
        return problem(422, "Invalid request", detail, "validation", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(error.status_code, "Error")
        return problem(
            error.status_code,
            title,
            str(error.detail),
            f"http-{error.status_code}",
            dict(error.headers or {}),
        )

    @app.exception_handler(IntegrityError)
    async def _duplicate(_: Request, error: IntegrityError) -> JSONResponse:
        log.warning("integrity error %s", type(error.orig).__name__)
        return problem(409, "Conflict", "the record conflicts with an existing one", "duplicate")


def internal_error() -> JSONResponse:
    """The 500 problem: a fixed sentence, never the exception's text or a traceback."""
    return problem(
        500,
        "Internal server error",
        "the request could not be completed; the error has been logged",
        "internal",
    )
