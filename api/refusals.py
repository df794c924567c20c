"""Refused access is audited on every surface (API, FHIR facade, pages): who, if known, the
method and route template (never the raw path, which may carry an id) and the outcome.

A 404 is audited when it answers an unknown patient, work item or user, so an unknown patient
and another site's patient leave the same row.
"""

from __future__ import annotations

import logging

from starlette.requests import Request

from engine.domain.errors import UnknownPatient, UnknownWorkItem
from engine.services import audit_trail
from engine.services.access import NotAuthenticated, UnknownUser
from engine.services.access_policy import Forbidden

#: The errors that mean "refused access", by the status they answer.
REFUSED: tuple[tuple[type[Exception], int], ...] = (
    (NotAuthenticated, 401),
    (Forbidden, 403),
    (UnknownPatient, 404),
    (UnknownWorkItem, 404),
    (UnknownUser, 404),
)
log = logging.getLogger("aihp.api")


def refusal_status(error: Exception) -> int | None:
    """The status of an access refusal, or None when `error` is something else."""
    return next((status for cls, status in REFUSED if isinstance(error, cls)), None)


def audit_refusal(request: Request, status: int, surface: str) -> None:
    """Write the audit row of a refused request (the refusal still answers if this fails)."""
    principal = getattr(request.state, "principal", None)
    route = getattr(request.scope.get("route"), "path", "<unmatched>")
    try:
        audit_trail.record_refusal(
            request.app.state.uow_factory(),
            principal.actor if principal is not None else None,
            surface=surface,
            method=request.method,
            route=request.scope.get("root_path", "") + route,
            status=status,
        )
    except Exception as failure:
        log.error("could not audit a refused request: %s", type(failure).__name__)


def audit_unknown_items(request: Request, refused: list[dict], surface: str) -> None:
    """Audit a bulk change's refusals of unknown (or out-of-scope) work items, one row each,
    as a single item's refusal is audited."""
    for _ in (r for r in refused if r.get("code") == UnknownWorkItem.code):
        audit_refusal(request, 404, surface)


def audit_if_refused(request: Request, error: Exception, surface: str) -> None:
    """Audit `error` if it is an access refusal."""
    status = refusal_status(error)
    if status is not None:
        audit_refusal(request, status, surface)
