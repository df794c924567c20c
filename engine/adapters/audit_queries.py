"""Reading the audit log within a site: the rows about that site's patients, and the rows
without a patient written by that site's users (their listings, refusals, user changes).

Rows without a patient written by a global user or by the system belong to no site: only a
reader without a site sees them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, literal, or_, select
from sqlalchemy.orm import Session

from engine.adapters.access_tables import users
from engine.adapters.orm import audit_log, patients


def audit_rows(
    session: Session, *, limit: int, patient_id: str | None = None, site: str | None = None
) -> list[dict[str, Any]]:
    """The newest `limit` rows, for one patient or all, within `site` (None: every site)."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if patient_id is not None:
        query = query.where(audit_log.c.patient_id == patient_id)
    if site is not None:
        site_patients = select(patients.c.id).where(patients.c.site == site)
        site_users = select(literal("user:") + users.c.id).where(users.c.site == site)
        query = query.where(
            or_(
                audit_log.c.patient_id.in_(site_patients),
                and_(audit_log.c.patient_id.is_(None), audit_log.c.actor.in_(site_users)),
            )
        )
    return [dict(row._mapping) for row in session.execute(query)]
