"""Queries of the order review (CDS Hooks): a patient by the identifier another system knows
them by, and the review that issued a card, for the card's feedback.

An EHR names a patient by its own id; the engine keeps that id as the patient's `external_id`,
unique within a site, so it is looked up within the caller's site only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from engine.adapters.orm import audit_log, patients

REVIEWED = "order_reviewed"


def patient_by_external_id(session: Session, site: str, external_ids: Iterable[str]) -> str | None:
    """The id of the patient at `site` known by one of `external_ids` (the first that matches)."""
    wanted = [i for i in dict.fromkeys(external_ids) if i]
    if not wanted:
        return None
    rows = session.execute(
        select(patients.c.id, patients.c.external_id).where(
            patients.c.site == site, patients.c.external_id.in_(wanted)
        )
    ).all()
    found = {row.external_id: row.id for row in rows}
    return next((found[i] for i in wanted if i in found), None)


def review_with_card(session: Session, card_id: str, since: datetime) -> dict[str, Any] | None:
    """The newest `order_reviewed` audit row since `since` that issued the card `card_id` (a
    UUID, checked by the caller, so it holds no LIKE wildcard), with its patient's site, or
    None."""
    row = session.execute(
        select(audit_log.c.patient_id, audit_log.c.detail, audit_log.c.at, patients.c.site)
        .join(patients, patients.c.id == audit_log.c.patient_id)
        .where(
            audit_log.c.at >= since,
            audit_log.c.action == REVIEWED,
            cast(audit_log.c.detail, Text).like(f'%"{card_id}"%'),
        )
        .order_by(audit_log.c.id.desc())
        .limit(1)
    ).first()
    return dict(row._mapping) if row is not None else None
