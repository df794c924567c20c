"""How a FHIR route answers: `application/fhir+json` bodies, errors as OperationOutcome.

`FhirRoute` wraps each route of the facade, so every error raised while it runs (a missing
token, a refused role, a domain error, a malformed body) becomes an OperationOutcome with its
status; the JSON API keeps its problem+json handlers. A refused access (401, 403, the 404 of
a patient) is audited as on every surface. Unexpected errors are logged without PHI
(the error's type and where it was raised) and answered with a fixed sentence.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from api.fhir.outcome import INTERNAL, FhirError, outcome_for
from api.refusals import audit_if_refused

FHIR_JSON = "application/fhir+json"
log = logging.getLogger("aihp.api.fhir")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


def answer(
    resource: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> FhirResponse:
    """A FHIR resource as the response body."""
    return FhirResponse(resource, status_code=status, headers=headers)


class FhirRoute(APIRoute):
    """An APIRoute whose errors are OperationOutcome resources."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_as_fhir(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as error:
                await run_in_threadpool(audit_if_refused, request, error, "fhir")
                try:
                    status, outcome, headers = outcome_for(error)
                except Exception:
                    frames = traceback.extract_tb(error.__traceback__)
                    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
                    log.error("unhandled %s at %s in %s", type(error).__name__, where, self.path)
                    return answer(INTERNAL, 500)
                return answer(outcome, status, headers)

        return handle_as_fhir


def new_router() -> APIRouter:
    """A router for one FHIR resource type (left out of the OpenAPI document: the facade is
    described by its CapabilityStatement at `/fhir/metadata`)."""
    return APIRouter(prefix="/fhir", route_class=FhirRoute, include_in_schema=False, tags=["fhir"])


async def read_resource(request: Request, resource_type: str) -> dict[str, Any]:
    """The request body as a FHIR resource of `resource_type`, or FhirError 400."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise FhirError("the body is not JSON", 400, "structure") from None
    return expect_resource(body, resource_type)


def expect_resource(body: Any, resource_type: str) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        raise FhirError(f"expected a {resource_type} resource", 400, "structure")
    return body


def reference_id(reference: Any, resource_type: str, where: str) -> str:
    """The id in a `{"reference": "Patient/123"}` (relative or absolute), or FhirError 400."""
    text = reference.get("reference") if isinstance(reference, dict) else reference
    if not isinstance(text, str):
        raise FhirError(f"{where} must be a reference to a {resource_type}", 400, "required")
    parts = text.rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] != resource_type or not _ID.match(parts[-1]):
        raise FhirError(f"{where} must reference {resource_type}/<id>, not {text!r}", 400)
    return parts[-1]


def valid_id(resource_id: str) -> str:
    """A FHIR logical id, or FhirError 404 (no resource can have another)."""
    if not _ID.match(resource_id):
        raise FhirError(f"no resource with id {resource_id!r}", 404, "not-found")
    return resource_id


def searchset(base: str, resources: list[dict[str, Any]], total: int | None = None) -> dict:
    """A search result Bundle of the matches."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources) if total is None else total,
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def base_url(request: Request) -> str:
    """This server's FHIR base URL, for fullUrl and Location."""
    return str(request.base_url).rstrip("/") + "/fhir"


def items(values: Any) -> list[Any]:
    """A FHIR list element, or [] when it is missing or not a list."""
    return values if isinstance(values, list) else []


def dicts(values: Any) -> list[dict[str, Any]]:
    """The complex elements of a FHIR list (anything else is ignored)."""
    return [v for v in items(values) if isinstance(v, dict)]


def string(value: Any) -> str | None:
    """A FHIR string or code element, or None when it is missing or not a string."""
    return value if isinstance(value, str) else None


def first(values: Any) -> dict[str, Any]:
    """The first complex element of a FHIR list, or {}."""
    found = dicts(values)
    return found[0] if found else {}
