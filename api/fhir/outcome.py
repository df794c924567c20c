"""OperationOutcome: every error of the FHIR facade, with its HTTP status and FHIR issue type.

| error | status | issue code |
|---|---|---|
| no valid bearer token | 401 + `WWW-Authenticate: Bearer` | login |
| role not allowed | 403 | forbidden |
| unknown patient or resource, another site's patient | 404 | not-found |
| not a FHIR resource of the expected type, bad search parameter | 400 | structure, invalid |
| LOINC code not in the pathway | 422 | code-invalid |
| unit that does not convert, value out of range, future date | 422 | value / invalid |
| refused by a safety rule (rule IDs in `details`) | 422 | business-rule |
| concurrent change, enrolled on another pathway version | 409 | conflict |
| anything unexpected | 500, a fixed sentence | exception |
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import status_of, status_of_code
from api.fhir.terminology import RULES
from engine.domain.errors import (
    DomainError,
    HardBlock,
    InvalidInput,
)


class FhirError(Exception):
    """A request the facade refuses before any service is called (malformed FHIR content)."""

    def __init__(
        self,
        diagnostics: str,
        status: int = 400,
        code: str = "invalid",
        expression: str | None = None,
    ):
        super().__init__(diagnostics)
        self.diagnostics, self.status, self.code = diagnostics, status, code
        self.expression = expression  # the offending element (FHIRPath), when one is named


def operation_outcome(
    diagnostics: str,
    code: str = "invalid",
    severity: str = "error",
    rule_ids: list[str] | tuple[str, ...] = (),
    expression: str | None = None,
) -> dict[str, Any]:
    """One issue; the rule IDs of a safety refusal become `details` codings."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if rule_ids:
        issue["details"] = {
            "coding": [{"system": RULES, "code": rule} for rule in rule_ids],
            "text": ", ".join(rule_ids),
        }
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def outcome_for(error: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(HTTP status, OperationOutcome, headers) for an error, or re-raise if unexpected."""
    if isinstance(error, FhirError):
        outcome = operation_outcome(error.diagnostics, error.code, expression=error.expression)
        return error.status, outcome, {}
    if isinstance(error, DomainError):
        status, _, code = status_of(error)
        if isinstance(error, InvalidInput) and "unit" in error.message:
            code = "value"
        rules = list(error.rule_ids) if isinstance(error, HardBlock) else []
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        return status, operation_outcome(error.message, code, rule_ids=rules), headers
    if isinstance(error, RequestValidationError):
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in error.errors()
        )
        return 400, operation_outcome(detail or "invalid request", "invalid"), {}
    if isinstance(error, StarletteHTTPException):
        code = {404: "not-found", 405: "not-supported"}.get(error.status_code, "processing")
        return error.status_code, operation_outcome(str(error.detail), code), {}
    if isinstance(error, IntegrityError):
        return 409, operation_outcome("the record conflicts with an existing one", "duplicate"), {}
    raise error


INTERNAL = operation_outcome(
    "the request could not be completed; the error has been logged", "exception", "fatal"
)


def outcome_for_refusal(error_code: str, reason: str, rule_ids: list[str]) -> tuple[int, dict]:
    """(HTTP status, OperationOutcome) for one refused item of a batch, by its error code."""
    status, _, code = status_of_code(error_code)
    if error_code == InvalidInput.code and "unit" in reason:
        code = "value"
    return status, operation_outcome(reason, code, rule_ids=rule_ids)
