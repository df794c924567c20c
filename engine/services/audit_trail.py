"""Reading the audit log (for auditors); the reading itself is audited too."""

from __future__ import annotations

from typing import Any

from engine.domain.model import AuditRecord
from engine.services.unit_of_work import SqlAlchemyUnitOfWork


def audit_entries(
    uow: SqlAlchemyUnitOfWork, actor: str, *, patient_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest audit rows, for one patient or all, newest first."""
    with uow:
        rows = uow.audit.recent(limit, patient_id)
        detail = {"patient_id": patient_id, "limit": limit}
        uow.record_only(
            [AuditRecord(uow.clock.now(), actor, "audit_read", patient_id, detail=detail)]
        )
    return rows
