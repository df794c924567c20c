"""The audit log: reading it (auditors, within their site; the reading is audited too), and
recording refused access (who, what, outcome) without revealing whether a patient exists.

Reading is typed on `SqlAlchemyUnitOfWork` (its session goes to audit_queries.py); recording a
refusal on the abstract `UnitOfWork`.
"""

from __future__ import annotations

from typing import Any

from engine.adapters.audit_queries import audit_rows
from engine.domain.errors import UnknownPatient
from engine.domain.model import AuditRecord
from engine.services.access_policy import Principal, Resource, enforce
from engine.services.patient_directory import patient_ref
from engine.services.unit_of_work import SqlAlchemyUnitOfWork, UnitOfWork

#: How a refusal is named in the audit log, by HTTP status.
REFUSALS = {401: "not-authenticated", 403: "forbidden", 404: "not-found"}


def audit_entries(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    *,
    patient_id: str | None = None,
    limit: int = 100,
    reader: Principal | None = None,
) -> list[dict[str, Any]]:
    """The newest audit rows, for one patient or all, newest first. A `reader` with a site sees
    only that site's rows; another site's patient is unknown, exactly like a wrong id."""
    site = reader.site if reader is not None else None
    if reader is not None:
        enforce(reader, "audit.read")
    if patient_id is not None:
        missing = UnknownPatient(f"no patient with id {patient_id!r}")
        try:
            ref = patient_ref(uow, patient_id)
        except UnknownPatient:
            raise missing from None
        if reader is not None:
            enforce(reader, "audit.read", Resource(ref.site), missing=lambda: missing)
    with uow:
        rows = audit_rows(uow.session, limit=limit, patient_id=patient_id, site=site)
        detail = {"patient_id": patient_id, "limit": limit, "site": site}
        uow.record_only(
            [AuditRecord(uow.clock.now(), actor, "audit_read", patient_id, detail=detail)]
        )
    return rows


def record_refusal(
    uow: UnitOfWork,
    actor: str | None,
    *,
    surface: str,
    method: str,
    route: str,
    status: int,
) -> None:
    """Audit a refused request: who (if known), the method and route template (never the raw
    path, which may carry an id), and the outcome. An unknown patient and another site's patient
    give the same row."""
    outcome = REFUSALS.get(status, str(status))
    detail = {"surface": surface, "method": method, "route": route, "status": status}
    with uow:
        uow.record_only(
            [
                AuditRecord(
                    uow.clock.now(),
                    actor or "anonymous",
                    "access_refused",
                    None,
                    reason=f"{method} {route}: {outcome}",
                    detail=detail | {"outcome": outcome},
                )
            ]
        )
