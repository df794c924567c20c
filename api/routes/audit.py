"""The audit log, for auditors: who read or changed what, when and why (newest first).

An auditor with a site reads only that site's rows; another site's patient is a 404, exactly
like an unknown id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api import schemas
from api.deps import AuditReader, UnitOfWork, reject_unknown_query
from api.errors import problems
from engine.services.audit_trail import audit_entries

router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[Depends(reject_unknown_query)])


@router.get(
    "",
    response_model=list[schemas.AuditEntry],
    responses=problems(401, 403, 404, 422),
    summary="Audit entries, for one patient or all, within the caller's site (audited too)",
)
def audit(
    principal: AuditReader,
    uow: UnitOfWork,
    patient_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    return audit_entries(
        uow(), principal.actor, patient_id=patient_id, limit=limit, reader=principal
    )
