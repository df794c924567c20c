"""The care-team directory: clinicians and how reminders reach them.

Typed on the abstract `UnitOfWork`: it uses only the reminder store, the audit and the clock.
"""

from __future__ import annotations

from typing import Any

from engine.domain.clinical_text import one_line
from engine.domain.errors import InvalidInput
from engine.domain.model import AuditRecord
from engine.notifications.compose import InvalidAddress, checked_address
from engine.services.unit_of_work import UnitOfWork


def register_clinician(
    uow: UnitOfWork,
    actor: str,
    clinician_id: str,
    *,
    name: str,
    email: str | None = None,
    site: str | None = None,
) -> dict[str, Any]:
    """Add or update a clinician (the id patients are enrolled under) and their email."""
    clinician_id = one_line(clinician_id, "clinician id", 64) or ""
    name = one_line(name, "name", 128) or ""
    if not clinician_id or not name:
        raise InvalidInput("a clinician needs an id and a name")
    if email:
        try:
            email = checked_address(email)
        except InvalidAddress as exc:
            raise InvalidInput(f"email: {exc.reason}") from None
    with uow:
        uow.reminders.save_clinician(clinician_id.strip(), name.strip(), email, site)
        uow.audit.append(
            [
                AuditRecord(
                    at=uow.clock.now(),
                    actor=actor,
                    action="clinician_saved",
                    patient_id=None,
                    detail={"clinician": clinician_id},
                )
            ]
        )
        uow.commit()
    return {"id": clinician_id.strip(), "name": name.strip(), "email": email, "site": site}
