"""The Observation-search query: recorded lab results by patient, lab code and sampling time,
within a site, newest first, with keyset paging (never OFFSET).

Rows come newest sample first (`taken_at` descending, then `id` descending to break ties). A
page starts strictly after the last row of the previous page, so paging stays cheap however
deep it goes and rows recorded meanwhile are neither skipped nor repeated. One patient's rows
are found through `ix_lab_results_patient` (patient, code, time); a search over a whole site or
every site walks `ix_lab_results_taken_at` (time, id) in page order and stops after one page.
The site is an EXISTS on the row's patient, not a join, so SQLite (which keeps no statistics)
does not start from the site's patients and sort all their results; the patient's site and
pathway are looked up for the page's rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from engine.adapters.orm import lab_results, patients

#: A row's place in the page order: (taken_at, id).
Position = tuple[datetime, str]


@dataclass(frozen=True)
class ObservationFilter:
    """What the rows must match; None leaves a criterion out. `codes` are the engine's lab codes
    (an empty set matches nothing); `taken_from` is inclusive, `taken_before` exclusive."""

    patient_id: str | None = None
    site: str | None = None
    codes: frozenset[str] | None = None
    taken_from: datetime | None = None
    taken_before: datetime | None = None


def _conditions(criteria: ObservationFilter) -> list[Any]:
    found: list[Any] = []
    if criteria.patient_id is not None:
        found.append(lab_results.c.patient_id == criteria.patient_id)
    if criteria.site is not None:  # EXISTS, not a join: the planner keeps walking in time order
        found.append(
            exists().where(
                patients.c.id == lab_results.c.patient_id, patients.c.site == criteria.site
            )
        )
    if criteria.codes is not None:
        found.append(lab_results.c.code.in_(sorted(criteria.codes)))
    if criteria.taken_from is not None:
        found.append(lab_results.c.taken_at >= criteria.taken_from)
    if criteria.taken_before is not None:
        found.append(lab_results.c.taken_at < criteria.taken_before)
    return found


def _of_patient(column: Any) -> Any:
    """A column of the row's patient, looked up for the rows of the page only."""
    return (
        select(column).where(patients.c.id == lab_results.c.patient_id).scalar_subquery()
    ).label(column.name)


def find_observations(
    session: Session, criteria: ObservationFilter, *, after: Position | None, limit: int
) -> tuple[list[dict[str, Any]], Position | None]:
    """(one page of lab rows with their patient's site and pathway, newest first; the position
    to continue after, or None on the last page)."""
    conditions = _conditions(criteria)
    if after is not None:
        taken_at, record_id = after
        conditions += [
            lab_results.c.taken_at <= taken_at,
            or_(
                lab_results.c.taken_at < taken_at,
                and_(lab_results.c.taken_at == taken_at, lab_results.c.id < record_id),
            ),
        ]
    rows = session.execute(
        select(lab_results, _of_patient(patients.c.site), _of_patient(patients.c.pathway_key))
        .where(*conditions)
        .order_by(lab_results.c.taken_at.desc(), lab_results.c.id.desc())
        .limit(limit + 1)
    ).all()
    page = [row._asdict() for row in rows[:limit]]
    more = len(rows) > limit and page
    return page, (page[-1]["taken_at"], page[-1]["id"]) if more else None


def count_observations(session: Session, criteria: ObservationFilter) -> int:
    """How many rows match in all (cheap for one patient: their rows only)."""
    query = select(func.count()).select_from(lab_results).where(*_conditions(criteria))
    return session.scalar(query) or 0
