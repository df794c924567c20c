"""The audit log, for auditors: who read or changed what, when and why (newest first)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api import schemas
from api.deps import Auditor, UnitOfWork, reject_unknown_query
from api.errors import problems
from engine.services.audit_trail import audit_entries

router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[Depends(reject_unknown_query)])


@router.get(
    "",
    response_model=list[schemas.AuditEntry],
    responses=problems(401, 403, 422),
    summary="Audit entries, for one patient or all (reading them is audited too)",
)
def audit(
    principal: Auditor,
    uow: UnitOfWork,
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    return audit_entries(uow(), principal.actor, patient_id=patient_id, limit=limit)
