"""SQL for lab messages (the HL7 feed): patients by their site's record number, and the answer
remembered for a sending facility's message control id.

The answer is a row of the idempotency keys table (principal `hl7:<facility>`, key the control
id), written by the unit of work in the same transaction as the message's results
(`KeyedRequest`), so a committed message is always remembered and a remembered message was
always committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.adapters.access_tables import idempotency_keys
from engine.adapters.orm import patients

METHOD, PATH = "HL7", "ORU^R01"


@dataclass(frozen=True)
class RememberedMessage:
    digest: str
    answer: dict[str, Any]
    received_at: datetime


def patients_by_record_number(
    session: Session, site: str, record_numbers: Iterable[str]
) -> dict[str, tuple[str, str]]:
    """record number -> (patient id, pathway key), for the site's patients among them."""
    wanted = sorted(set(record_numbers))
    if not wanted:
        return {}
    rows = session.execute(
        select(patients.c.external_id, patients.c.id, patients.c.pathway_key).where(
            patients.c.site == site, patients.c.external_id.in_(wanted)
        )
    )
    return {row.external_id: (row.id, row.pathway_key) for row in rows}


def remembered_message(
    session: Session, facility: str, control_id: str
) -> RememberedMessage | None:
    row = session.execute(
        select(idempotency_keys).where(
            idempotency_keys.c.principal == lab_message_principal(facility),
            idempotency_keys.c.key == control_id,
        )
    ).first()
    if row is None:
        return None
    return RememberedMessage(row.body_hash, row.response or {}, row.created_at)


def lab_message_principal(facility: str) -> str:
    """Whose idempotency key a facility's control id is."""
    return f"hl7:{facility}"[:64]
