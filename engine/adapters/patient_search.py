"""The patient-search query: filters, name order, and keyset paging (never OFFSET).

Rows come in the order a list of names is read: family name, given name (their folded search
keys), then id to break ties. A page starts strictly after the last row of the previous page,
so paging stays exact and cheap however deep it goes, and rows added meanwhile are neither
skipped nor repeated. Name words match the start of the given or family name, or of a later
part of either ("berg" finds "van den Berg"); keys are compared already folded, so the same
query serves SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.orm import Session

from engine.adapters.orm import patients

#: The row's place in the list order: (family name key, given name key, id).
Position = tuple[str, str, str]

COLUMNS = (
    "id",
    "external_id",
    "site",
    "clinician",
    "given_name",
    "family_name",
    "birth_date",
    "sex",
    "weight_kg",
    "email",
    "phone",
    "facts",
    "state",
    "pathway_key",
    "enrolled_at",
    "version",
)


@dataclass(frozen=True)
class PatientFilter:
    """What the rows must match; None (or no words) leaves a criterion out."""

    name_words: tuple[str, ...] = ()
    external_id: str | None = None
    birth_date: date | None = None
    site: str | None = None
    clinician: str | None = None
    state: str | None = None


def _word_matches(word: str):
    family, given = patients.c.family_name_key, patients.c.given_name_key
    return or_(
        family.startswith(word, autoescape=True),
        given.startswith(word, autoescape=True),
        family.contains(f" {word}", autoescape=True),
        given.contains(f" {word}", autoescape=True),
    )


def _conditions(criteria: PatientFilter) -> list[Any]:
    found: list[Any] = [_word_matches(word) for word in criteria.name_words]
    if criteria.external_id is not None:
        found.append(patients.c.external_id == criteria.external_id)
    if criteria.birth_date is not None:
        found.append(patients.c.birth_date == criteria.birth_date)
    if criteria.site is not None:
        found.append(patients.c.site == criteria.site)
    if criteria.clinician is not None:
        found.append(patients.c.clinician == criteria.clinician)
    if criteria.state is not None:
        state = criteria.state
        found.append(or_(patients.c.state == state, patients.c.state.startswith(f"{state}.")))
    return found


def find_patients(
    session: Session, criteria: PatientFilter, *, after: Position | None, limit: int
) -> tuple[list[dict[str, Any]], Position | None, int]:
    """(one page of rows in name order, the position to continue after or None when this is
    the last page, how many rows match in all)."""
    order = (patients.c.family_name_key, patients.c.given_name_key, patients.c.id)
    conditions = _conditions(criteria)
    total = session.scalar(select(func.count()).select_from(patients).where(*conditions)) or 0
    paged = list(conditions)
    if after is not None:
        paged.append(tuple_(*order) > tuple_(*after))
    rows = session.execute(
        select(*(patients.c[name] for name in COLUMNS), *order[:2])
        .where(*paged)
        .order_by(*order)
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    page = rows[:limit]
    last = page[-1] if more and page else None
    position = (last.family_name_key, last.given_name_key, last.id) if last else None
    return [{name: row._mapping[name] for name in COLUMNS} for row in page], position, total


def patient_site_and_version(session: Session, patient_id: str) -> Any:
    """(id, site, version) of one patient, or None."""
    return session.execute(
        select(patients.c.id, patients.c.site, patients.c.version).where(
            patients.c.id == patient_id
        )
    ).first()


def patients_by_enrolment(
    session: Session, *, site: str | None, state: str | None, limit: int, offset: int
) -> tuple[int, list[Any]]:
    """(total, one page) of patients at `site` in `state` or its sub-states, newest enrolment
    first (the plain listing without search criteria)."""
    conditions = []
    if site:
        conditions.append(patients.c.site == site)
    if state:
        conditions.append(or_(patients.c.state == state, patients.c.state.startswith(f"{state}.")))
    total = session.scalar(select(func.count()).select_from(patients).where(*conditions))
    rows = session.execute(
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
    return total or 0, rows
