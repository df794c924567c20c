"""Request and response models of the native JSON API (separate from the database tables).

Responses mirror the service layer's views (`engine/services/patient_views.py`) field for
field, so the OpenAPI document describes exactly what is sent.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
)

from engine.domain.clinical_text import UNSAFE_IN_A_LINE, UNSAFE_IN_A_NOTE
from engine.services.access_policy import ROLES

#: The plausible window of a clinical date or time at the edge. The engine's clock refuses a
#: time in the future (beyond a small skew); the window here keeps every value far from the
#: calendar's ends, so that no time-zone shift or date arithmetic can overflow.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_ISO_MOMENT = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}:\d{2})$"
)
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: C0 and C1 controls (CR, LF, NUL, ESC, ...), line and paragraph separators, direction
#: overrides and unpaired surrogates: one rule with the domain's.
_CONTROL = UNSAFE_IN_A_LINE
_NOTE_CONTROL = UNSAFE_IN_A_NOTE


def clinical_moment(value: Any) -> datetime:
    """An ISO-8601 date-time with its offset, inside the plausible window; never epoch seconds,
    a bare date or a naive time."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and _ISO_MOMENT.match(value):
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    else:
        raise ValueError("expected an ISO-8601 date-time with a time zone, e.g. 2026-03-01T09:30Z")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the date-time needs a time zone (Z or +hh:mm)")
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"the date-time must be between {EARLIEST:%Y} and {LATEST:%Y}")
    return moment


def clinical_day(value: Any) -> date:
    """An ISO-8601 calendar date (YYYY-MM-DD) inside the plausible window."""
    if isinstance(value, date) and not isinstance(value, datetime):
        day = value
    elif isinstance(value, str) and _ISO_DAY.match(value):
        day = date.fromisoformat(value)
    else:
        raise ValueError("expected an ISO-8601 date, e.g. 1980-03-01")
    if not EARLIEST.date() <= day < LATEST.date():
        raise ValueError(f"the date must be between {EARLIEST:%Y} and {LATEST:%Y}")
    return day


def single_line(value: str) -> str:
    """Text with no control character (CR, LF, NUL...) and not blank: safe in any header."""
    if _CONTROL.search(value):
        raise ValueError("control characters (such as CR or LF) are not allowed")
    if value and not value.strip():
        raise ValueError("must not be blank")
    return value


def note_text(value: str) -> str:
    """Free text that may span lines (LF, CR, tab) but has no other control character."""
    if _NOTE_CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


# Request fields take exactly the JSON types the OpenAPI document declares: no "62" for 62,
# no "true" for true, no epoch seconds for a date-time; text is one line; numbers are finite
# and of a size no unit conversion can overflow.
Line = Annotated[str, AfterValidator(single_line)]
Text64 = Annotated[Line, Field(min_length=1, max_length=64)]
Note = Annotated[str, AfterValidator(note_text)]
Number = Annotated[float, Strict(), Field(ge=-1e9, le=1e9, allow_inf_nan=False)]
Flag = Annotated[bool, Strict()]
Moment = Annotated[AwareDatetime, BeforeValidator(clinical_moment)]
Day = Annotated[date, BeforeValidator(clinical_day)]
Dose = Annotated[float, Strict(), Field(ge=0, le=100000, allow_inf_nan=False)]
DosePerKg = Annotated[float, Strict(), Field(ge=0, le=1000, allow_inf_nan=False)]
Version = Annotated[
    int, Strict(), Field(ge=0, le=2**31, description="The patient version the change is based on.")
]


class Problem(BaseModel):
    """RFC 9457 problem details; refused orders add the rule IDs and their sources."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    rule_ids: list[str] | None = None
    sources: list[str] | None = None
    block_id: str | None = None


# ---- requests -----------------------------------------------------------------------------


class EnrolRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: Text64
    clinician: Text64
    birth_date: Day
    sex: Literal["F", "M", "X"]
    weight_kg: Annotated[float, Strict(), Field(gt=0, lt=500)]
    facts: dict[Text64, Flag | Number | None] = Field(
        default_factory=dict, description="Pathway facts, e.g. cirrhosis, pregnancy, MELD."
    )
    given_name: Annotated[Line, Field(max_length=128)] = ""
    family_name: Annotated[Line, Field(max_length=128)] = ""
    external_id: Text64 | None = None
    email: Annotated[Line, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = (
        None
    )
    phone: Annotated[str, Field(max_length=32, pattern=r"^\+?[0-9 ()./-]{3,32}$")] | None = None
    contact_preferences: dict[Text64, Flag | Annotated[Line, Field(max_length=64)]] = Field(
        default_factory=dict, description='e.g. {"channel": "email", "sms": false}'
    )
    pathway_key: Text64 | None = Field(None, description="A version key; default the newest.")


class LabRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[Line, Field(min_length=1, max_length=16, description="ALT or LOINC 1742-6")]
    value: Number | Annotated[Line, Field(min_length=1, max_length=32)]
    unit: Annotated[Line, Field(max_length=16)] | None = Field(None, description="UCUM unit")
    taken_at: Moment | None = None
    source: Annotated[Line, Field(min_length=1, max_length=32)] = "api"
    expected_version: Version | None = None


class EventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Annotated[Line, Field(min_length=1, max_length=48)]
    occurred_at: Moment | None = None
    data: dict[Text64, Flag | Number | Annotated[Line, Field(max_length=200)] | None] = Field(
        default_factory=dict
    )
    expected_version: Version | None = None


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    drug: Annotated[Line, Field(min_length=1, max_length=48)]
    mg_per_day: Dose | None = None
    mg_per_kg_day: DosePerKg | None = None
    route: Annotated[Line, Field(min_length=1, max_length=16)] = "oral"
    ordered_at: Moment | None = None
    overrides: Annotated[
        dict[Text64, Annotated[Line, Field(min_length=1, max_length=500)]],
        Field(
            max_length=5,
            description="Overridable block or dose-range id -> the clinician's reason (audited).",
        ),
    ] = Field(default_factory=dict)
    expected_version: Version | None = None


class WhatIfRequest(BaseModel):
    """A hypothetical lab (code, value, unit), event (event, data) or order (drug, dose)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["lab", "event", "order"]
    code: Annotated[Line, Field(max_length=16)] | None = None
    value: Number | Annotated[Line, Field(max_length=32)] | None = None
    unit: Annotated[Line, Field(max_length=16)] | None = None
    taken_at: Moment | None = None
    event: Annotated[Line, Field(max_length=48)] | None = None
    occurred_at: Moment | None = None
    data: dict[Text64, Flag | Number | Annotated[Line, Field(max_length=200)] | None] | None = None
    drug: Annotated[Line, Field(max_length=48)] | None = None
    mg_per_day: Dose | None = None
    mg_per_kg_day: DosePerKg | None = None
    route: Annotated[Line, Field(max_length=16)] | None = None


class UserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")]
    role: Literal[ROLES]  # type: ignore[valid-type]  # the policy's roles, one list
    site: Text64 | None = None
    password: Annotated[
        SecretStr | None,
        Field(description="For the login page; never stored or shown (an argon2 hash is kept)."),
    ] = None


class PasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Annotated[SecretStr, Field(description="Never stored or shown (argon2 hash).")]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: Annotated[int, Strict(), Field(ge=1, le=3650)] = 30


# ---- responses ----------------------------------------------------------------------------


class Why(BaseModel):
    """A cited rule: its ID, its sentence and its sources."""

    rule: str
    text: str
    sources: list[str]


class PathwayRef(BaseModel):
    key: str
    review_status: str


class RegimenItem(BaseModel):
    drug: str
    mg_per_day: float | None
    mg_per_kg_day: float | None
    given_as: str | None = Field(None, description="the unit the dose was ordered in")
    route: str
    since: str
    overrides: list[str] = Field(
        default_factory=list, description="blocks or dose ranges overridden with a reason"
    )


class MilestoneItem(BaseModel):
    id: str
    milestone: str
    title: str
    kind: str
    due_at: str
    grace_until: str
    status: str
    urgent: bool
    recipients: list[str]
    why: list[Why]


class AlertItem(BaseModel):
    id: str
    alert: str
    severity: str
    message: str
    raised_at: str
    why: list[Why]


class PatientStatus(BaseModel):
    """Where the patient is, what is due and what is open, each with its reason."""

    model_config = ConfigDict(extra="allow")

    patient_id: str
    external_id: str | None
    site: str
    clinician: str
    pathway: PathwayRef
    state: str
    stage: str
    state_text: str
    state_since: str | None
    state_why: list[Why]
    treatment_start: str | None
    facts: dict[str, Any]
    regimen: list[RegimenItem]
    expected_dose: dict[str, Any] | None
    next_milestones: list[MilestoneItem]
    open_alerts: list[AlertItem]
    version: int


class TransitionTaken(BaseModel):
    trigger: str
    to: str
    why: list[Why]


class Outcome(BaseModel):
    """What one input did: the state before and after, the transition and its reasons."""

    model_config = ConfigDict(extra="allow")

    patient_id: str
    record_id: str | None
    state_before: str
    state: str
    transition: TransitionTaken | None
    alerts_raised: list[str]
    alerts_resolved: list[str]
    milestones_scheduled: list[str]
    milestones_closed: list[str]
    version: int


class Refusal(BaseModel):
    rules: list[str]
    reason: str
    sources: list[str]


class WhatIfResult(BaseModel):
    """The hypothetical outcome (nothing written), or the safety rule that would refuse it."""

    allowed: bool
    refused: Refusal | None = None
    patient_id: str | None = None
    record_id: str | None = None
    state_before: str | None = None
    state: str | None = None
    transition: TransitionTaken | None = None
    alerts_raised: list[str] = []
    alerts_resolved: list[str] = []
    milestones_scheduled: list[str] = []
    milestones_closed: list[str] = []
    version: int | None = None
    status: PatientStatus | None = None


class HistoryTransition(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    at: str
    from_: str | None = Field(alias="from")
    to: str | None
    by: str
    reason: str
    rules: list[str]


def _finite_or_none(value: Any) -> Any:
    """A stored number that is not finite (written before the edge refused it) reads as None."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class HistoryLab(BaseModel):
    code: str
    value: Annotated[float | str | None, AfterValidator(_finite_or_none)]
    unit: str | None
    reported: str
    taken_at: str
    source: str


class HistoryEvent(BaseModel):
    kind: str
    occurred_at: str
    data: dict[str, Any]


class HistoryOrder(BaseModel):
    drug: str
    mg_per_day: float | None
    mg_per_kg_day: float | None
    given_as: str | None = None
    overrides: list[str] = Field(default_factory=list)
    route: str
    status: str
    ordered_at: str
    ended_at: str | None


class HistoryMilestone(BaseModel):
    milestone: str
    title: str
    due_at: str
    status: str
    closed_at: str | None
    reason: str | None


class HistoryRefusal(BaseModel):
    at: str
    by: str
    reason: str
    rules: list[str]


class PatientHistory(BaseModel):
    """Everything recorded about the patient, oldest first."""

    model_config = ConfigDict(extra="allow")

    patient_id: str
    transitions: list[HistoryTransition]
    labs: list[HistoryLab]
    events: list[HistoryEvent]
    orders: list[HistoryOrder]
    milestones: list[HistoryMilestone]
    refusals: list[HistoryRefusal]


class PatientRow(BaseModel):
    patient_id: str
    site: str
    clinician: str
    state: str
    stage: str
    pathway_key: str
    enrolled_at: datetime
    version: int


class PatientList(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[PatientRow]


class PathwayVersion(BaseModel):
    key: str
    id: str
    version: str
    title: str
    review_status: str
    latest: bool


class PathwayDefinition(BaseModel):
    key: str
    id: str
    version: str
    title: str
    review_status: str
    definition: dict[str, Any] = Field(description="The pathway file's data, as loaded.")


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    patient_id: str | None
    from_state: str | None
    to_state: str | None
    reason: str
    rule_ids: list[str]
    detail: dict[str, Any]


class User(BaseModel):
    id: str
    name: str
    role: str
    site: str | None
    active: bool
    created_at: datetime


class PasswordSet(BaseModel):
    user_id: str
    name: str
    password_set_at: datetime


class Me(BaseModel):
    user_id: str
    name: str
    role: str
    site: str | None


class TokenInfo(BaseModel):
    id: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class IssuedToken(TokenInfo):
    token: str = Field(description="The bearer token; shown once, stored only as a hash.")


# ---- coordinator queues ------------------------------------------------------------------


class QueueItem(BaseModel):
    """A piece of work in a coordinator queue, with the queue it is in now."""

    id: str
    queue: str
    kind: str
    status: str
    title: str
    reason: str
    patient_id: str
    patient_name: str | None = None
    external_id: str | None = None
    patient_state: str | None = None
    site: str
    clinician: str
    due_at: datetime
    urgent: bool
    rule_ids: list[str]
    milestone_kind: str | None = None
    reminder_id: str | None = None
    claimed_by: str | None = None
    snoozed_until: datetime | None = None
    note: str | None = None
    version: int


class QueueListing(BaseModel):
    items: list[QueueItem]
    total: int
    counts: dict[str, int]
    offset: int
    limit: int


class QueueItemChange(BaseModel):
    """The item after a claim, release, completion or snooze."""

    id: str
    kind: str
    status: str
    title: str
    patient_id: str
    site: str
    claimed_by: str | None = None
    snoozed_until: datetime | None = None
    note: str | None = None
    version: int


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Note = Field("", max_length=1000)
    expected_version: int | None = Field(None, ge=0)


class SnoozeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: Moment
    reason: Note = Field(min_length=1, max_length=500)
    expected_version: int | None = Field(None, ge=0)


class TakeOverRequest(BaseModel):
    """Taking over an item another coordinator holds: the reason is audited."""

    model_config = ConfigDict(extra="forbid")

    reason: Note = Field(min_length=1, max_length=500)
    expected_version: int | None = Field(None, ge=0)


class VersionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected_version: int | None = Field(None, ge=0)


class ReminderAcknowledgement(BaseModel):
    id: str
    status: str
    acknowledged_at: datetime
    acknowledged_by: str
