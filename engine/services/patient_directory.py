"""Finding patients: search by name, external id, birth date, site, clinician and state (one
service for the page, the API and FHIR), the older filtered list, and one patient's site and
version.

`patient_ref` answers a patient's site and version for the services that scope a request to
a patient they do not load (order review, the audit trail); a use case that loads the patient
admits the caller on that load instead (`engine.services.admission`). `search_patients` asks
the access policy where the caller may look (their own site, whatever they asked for), pages
by keyset (a cursor, never an offset) and audits each search with what was searched, not the
searched names or dates.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from engine.adapters.patient_search import (
    PatientFilter,
    Position,
    find_patients,
    patient_site_and_version,
    patients_by_enrolment,
)
from engine.domain.clinical_text import one_line
from engine.domain.errors import InvalidInput, UnknownPatient
from engine.domain.model import AuditRecord
from engine.domain.patient_names import search_key
from engine.services.access_policy import Principal, listing_scope
from engine.services.care_pathways import care_pathway
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

SEARCH_PAGE_MAX = 100
EARLIEST_BIRTH = date(1900, 1, 1)


@dataclass(frozen=True)
class PatientRef:
    id: str
    site: str
    version: int


def patient_ref(uow: SqlAlchemyUnitOfWork, patient_id: str) -> PatientRef:
    """The patient's site and current version, or UnknownPatient."""
    with uow:
        row = patient_site_and_version(uow.session, patient_id)
    if row is None:
        raise UnknownPatient(f"no patient with id {patient_id!r}")
    return PatientRef(row.id, row.site, row.version)


def list_patients(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    *,
    site: str | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """Patients (id, site, clinician, state, enrolment, version), newest enrolment first.

    `state` matches a state and its sub-states (`induction` finds `induction.prednisolone`).
    """
    state = _state(state)
    with uow:
        total, rows = patients_by_enrolment(
            uow.session, site=site, state=state, limit=limit, offset=offset
        )
        now = uow.clock.now()
        filters = {"site": site, "state": state, "limit": limit, "offset": offset}
        uow.record_only([AuditRecord(now, actor, "patient_list", None, detail=filters)])
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [
            {
                "patient_id": r.id,
                "site": r.site,
                "clinician": r.clinician,
                "state": r.state,
                "stage": r.state.split(".")[0],
                "pathway_key": r.pathway_key,
                "enrolled_at": r.enrolled_at,
                "version": r.version,
            }
            for r in rows
        ],
    }


def search_patients(
    uow: SqlAlchemyUnitOfWork,
    principal: Principal,
    *,
    name: str | None = None,
    external_id: str | None = None,
    birth_date: date | str | None = None,
    site: str | None = None,
    clinician: str | None = None,
    state: str | None = None,
    mine: bool = False,
    cursor: str | None = None,
    limit: int = 25,
    surface: str = "api",
) -> dict[str, Any]:
    """Patients matching every criterion given, in name order, one page at a time.

    `name`: words, each the start of the given or family name (case and accents ignored).
    `mine`: only the caller's own patients (a clinician's). `cursor`: the `next_cursor` of the
    previous page. A site-scoped caller sees only their site. Bad input is InvalidInput.
    """
    scope = listing_scope(principal, "patient.read", _text(site, "site", 64))
    criteria = PatientFilter(
        name_words=tuple(search_key(_text(name, "name", 128)).split())[:6],
        external_id=_text(external_id, "external_id", 64),
        birth_date=_birth_date(birth_date, uow.clock.now().date()),
        site=scope.site,
        clinician=principal.name if mine else _text(clinician, "clinician", 64),
        state=_state(state),
    )
    if not 1 <= limit <= SEARCH_PAGE_MAX:
        raise InvalidInput(f"limit must be between 1 and {SEARCH_PAGE_MAX}")
    after = _position(cursor)
    with uow:
        if scope.empty:
            rows, position, total = [], None, 0
        else:
            rows, position, total = find_patients(uow.session, criteria, after=after, limit=limit)
        searched = {
            "surface": surface,
            "criteria": [
                k
                for k, given in (
                    ("name", criteria.name_words),
                    ("external_id", criteria.external_id),
                    ("birth_date", criteria.birth_date),
                )
                if given
            ],
            "site": criteria.site,
            "clinician": criteria.clinician,
            "state": criteria.state,
            "mine": mine,
            "next_page": after is not None,
            "found": len(rows),
        }
        uow.record_only(
            [AuditRecord(uow.clock.now(), principal.actor, "patient_search", None, detail=searched)]
        )
    return {
        "total": total,
        "limit": limit,
        "items": [_match(row) for row in rows],
        "next_cursor": _cursor(position) if position else None,
    }


def _match(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "patient_id": row["id"],
        "external_id": row["external_id"],
        "given_name": row["given_name"],
        "family_name": row["family_name"],
        "birth_date": row["birth_date"],
        "sex": row["sex"],
        "weight_kg": row["weight_kg"],
        "email": row["email"],
        "phone": row["phone"],
        "facts": dict(row["facts"] or {}),
        "site": row["site"],
        "clinician": row["clinician"],
        "state": row["state"],
        "stage": row["state"].split(".")[0],
        "pathway_key": row["pathway_key"],
        "enrolled_at": row["enrolled_at"],
        "version": row["version"],
    }


def _text(value: str | None, field: str, max_length: int) -> str | None:
    """A one-line criterion, stripped; blank means 'not given'."""
    return one_line(value, field, max_length) or None


def _state(value: str | None) -> str | None:
    """A state (or stage) of the pathway: a misspelt one is refused, never an empty page."""
    state = _text(value, "state", 64)
    states = care_pathway().pathway.states
    if state is not None and state not in states:
        stages = ", ".join(s for s in states if "." not in s)
        raise InvalidInput(f"state {state!r} is not one of the pathway's; stages are {stages}")
    return state


def _birth_date(value: date | str | None, today: date) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(_text(value, "birth_date", 10) or "")
        except ValueError:
            raise InvalidInput("birth_date must be a date, YYYY-MM-DD") from None
    if value < EARLIEST_BIRTH:
        raise InvalidInput(f"birth_date must be on or after {EARLIEST_BIRTH.isoformat()}")
    if value > today:
        raise InvalidInput("birth_date is in the future")
    return value


def _cursor(position: Position) -> str:
    raw = json.dumps(list(position), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _position(cursor: str | None) -> Position | None:
    """The position a cursor continues after; InvalidInput for one this service did not give."""
    if not cursor:
        return None
    try:
        if len(cursor) > 1024:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not one a previous page gave") from None
    if not (isinstance(found, list) and len(found) == 3 and all(isinstance(p, str) for p in found)):
        raise InvalidInput("cursor is not one a previous page gave")
    return (found[0], found[1], found[2])
