"""SQL for the FHIR facade's reads beyond the patient aggregate: demographics, a patient's
site, and recorded lab results by id (work items: work_items.py).

The FHIR read service (engine/services/fhir_reads.py) scopes and audits; this module only reads
rows in the unit of work's session.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.adapters.orm import lab_results, patients
from engine.adapters.patient_search import COLUMNS

DEMOGRAPHICS = (*COLUMNS, "updated_at")  # a search row's columns, and when it last changed


def demographics(session: Session, patient_id: str) -> dict[str, Any] | None:
    """The patient's `DEMOGRAPHICS` columns, or None."""
    row = session.execute(
        select(*(patients.c[name] for name in DEMOGRAPHICS)).where(patients.c.id == patient_id)
    ).first()
    return row._asdict() if row else None


def site_of(session: Session, patient_id: str) -> str | None:
    """The patient's site, or None for an unknown patient."""
    return session.scalar(select(patients.c.site).where(patients.c.id == patient_id))


def sites_of(session: Session, patient_ids: Iterable[str]) -> dict[str, str]:
    """The site of each known patient id."""
    rows = session.execute(
        select(patients.c.id, patients.c.site).where(patients.c.id.in_(list(patient_ids)))
    )
    return {row.id: row.site for row in rows}


def lab_rows(session: Session, record_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Recorded lab results by id, with their patient's site and pathway key."""
    rows = session.execute(
        select(lab_results, patients.c.site, patients.c.pathway_key)
        .join(patients, patients.c.id == lab_results.c.patient_id)
        .where(lab_results.c.id.in_(record_ids))
    )
    return {row.id: row._asdict() for row in rows}
