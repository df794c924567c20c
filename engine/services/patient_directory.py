"""Finding patients: a filtered, paginated list of minimal rows, and one patient's site and version.

The API uses `patient_ref` to scope a caller to their site and to check `If-Match` before it
calls a use case; the list is audited as one read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select

from engine.adapters.orm import patients
from engine.domain.errors import UnknownPatient
from engine.domain.model import AuditRecord
from engine.services.unit_of_work import SqlAlchemyUnitOfWork


@dataclass(frozen=True)
class PatientRef:
    id: str
    site: str
    version: int


def patient_ref(uow: SqlAlchemyUnitOfWork, patient_id: str) -> PatientRef:
    """The patient's site and current version, or UnknownPatient."""
    with uow:
        row = uow.session.execute(
            select(patients.c.id, patients.c.site, patients.c.version).where(
                patients.c.id == patient_id
            )
        ).first()
    if row is None:
        raise UnknownPatient(f"no patient with id {patient_id!r}")
    return PatientRef(row.id, row.site, row.version)


def list_patients(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    *,
    site: str | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """Patients (id, site, clinician, state, enrolment, version), newest enrolment first.

    `state` matches a state and its sub-states (`induction` finds `induction.prednisolone`).
    """
    conditions = []
    if site:
        conditions.append(patients.c.site == site)
    if state:
        conditions.append(or_(patients.c.state == state, patients.c.state.startswith(f"{state}.")))
    with uow:
        total = uow.session.scalar(select(func.count()).select_from(patients).where(*conditions))
        rows = uow.session.execute(
            select(
                patients.c.id,
                patients.c.site,
                patients.c.clinician,
                patients.c.state,
                patients.c.pathway_key,
                patients.c.enrolled_at,
                patients.c.version,
            )
            .where(*conditions)
            .order_by(patients.c.enrolled_at.desc(), patients.c.id)
            .limit(limit)
            .offset(offset)
        ).all()
        now = uow.clock.now()
        filters = {"site": site, "state": state, "limit": limit, "offset": offset}
        uow.record_only([AuditRecord(now, actor, "patient_list", None, detail=filters)])
    return {
        "total": total or 0,
        "limit": limit,
        "offset": offset,
        "items": [
            {
                "patient_id": r.id,
                "site": r.site,
                "clinician": r.clinician,
                "state": r.state,
                "stage": r.state.split(".")[0],
                "pathway_key": r.pathway_key,
                "enrolled_at": r.enrolled_at,
                "version": r.version,
            }
            for r in rows
        ],
    }
