"""Review of the care load against the whole record (R2), on SQLite and PostgreSQL.

A random history (lab results with text values and amendments at the same moment, events whose
data holds whole-number floats, unicode and quotes, orders with overrides, time steps with
microseconds) goes through the service layer. Before each input, what the whole record
(`get`) would decide is worked out and rolled back; the service then decides it from the care
load. After each input, the care load holds the same values, of the same types, as the whole
record, and `for_status` shows the same status as `get`. Targeted tests follow: a batch with
two inputs for one patient, a writer that wins the race, and a unit of work that goes on after
a rollback.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from engine.adapters.database import make_engine, session_factory
from engine.adapters.migrate import upgrade
from engine.clock import ManualClock
from engine.domain.errors import ConcurrencyConflict, DomainError
from engine.domain.labs import LabHistory
from engine.services import patients as service
from engine.services.care_pathways import care_pathway
from engine.services.clinical_inputs import record_clinical_inputs
from engine.services.patient_views import status_view
from engine.services.unit_of_work import SqlAlchemyUnitOfWork
from tests.integration.baseline import enrolled, record_baseline

PROFILE = settings(
    max_examples=30,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: each step is a commit
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
START = datetime(2024, 3, 4, 8, 30, 0, 123456, tzinfo=UTC)
TEXTS = ["intolérance sévère", 'said "stop"', "back\\slash", "肝炎 ✓", "O'Brien, 🧪"]

LABS = st.one_of(
    st.tuples(st.just("ALT"), st.sampled_from([20, 30.0, 45.5, 120, 400.0]), st.just("U/L")),
    st.tuples(st.just("AST"), st.sampled_from([25, 300.0]), st.just("U/L")),
    st.tuples(st.just("IgG"), st.sampled_from([11.0, 18, 25.25]), st.just("g/L")),
    st.tuples(st.just("BILI"), st.sampled_from([10, 90.0]), st.just("umol/L")),
    st.tuples(
        st.sampled_from(["HBSAG", "ANTI_HBC"]), st.sampled_from(["negative", "positive"]), st.none()
    ),
)
EVENTS = st.one_of(
    st.tuples(st.just("intolerance"), st.fixed_dictionaries({"drug": st.just("azathioprine")})),
    st.tuples(
        st.just("medication_stopped"),
        st.fixed_dictionaries(
            {
                "drug": st.sampled_from(["azathioprine", "prednisolone"]),
                "reason": st.sampled_from(TEXTS),
            }
        ),
    ),
    st.tuples(
        st.just("severity_scores"),
        st.fixed_dictionaries({"meld": st.sampled_from([30.0, 12.5, 7])}),
    ),
    st.tuples(
        st.just("weight_recorded"),
        st.fixed_dictionaries({"weight_kg": st.sampled_from([64.0, 70, 58.25])}),
    ),
    st.tuples(
        st.just("elastography"), st.fixed_dictionaries({"kpa": st.sampled_from([9.0, 14.5])})
    ),
    st.tuples(
        st.just("biopsy_resulted"),
        st.fixed_dictionaries(
            {"histological_activity": st.booleans()},
            optional={"ishak_grade": st.sampled_from([3.0, 4])},
        ),
    ),
    st.tuples(st.sampled_from(["pregnancy", "pregnancy_ended", "stop_requested"]), st.just({})),
)
ORDERS = st.one_of(
    st.fixed_dictionaries(
        {"drug": st.just("prednisolone"), "mg_per_day": st.sampled_from([30.0, 20, 10.0, 5])}
    ),
    st.fixed_dictionaries(
        {
            "drug": st.just("prednisolone"),
            "mg_per_day": st.just(70.0),
            "overrides": st.just({"prednisolone-course": TEXTS[1]}),
        }
    ),
    st.fixed_dictionaries(
        {"drug": st.just("azathioprine"), "mg_per_kg_day": st.sampled_from([1, 1.5, 2.0])}
    ),
    st.fixed_dictionaries({"drug": st.just("budesonide"), "mg_per_day": st.just(9.0)}),
    st.fixed_dictionaries({"drug": st.just("mycophenolate_mofetil"), "mg_per_day": st.just(1000)}),
)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(1, 60 * 24 * 40), st.integers(0, 999_999)),
        st.tuples(st.just("lab"), LABS, st.sampled_from(["now", "same", "earlier"])),
        st.tuples(st.just("event"), EVENTS, st.sampled_from(["now", "same", "earlier"])),
        st.tuples(st.just("order"), ORDERS),
        st.tuples(st.just("review")),
    ),
    min_size=3,
    max_size=9,
)


def _typed(value: Any) -> Any:
    """A value with the types it holds (30 and 30.0, 1 and True differ)."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def _row(obj: Any, names: tuple[str, ...]) -> Any:
    return _typed({name: getattr(obj, name) for name in names})


LAB = ("id", "code", "taken_at", "value", "text", "unit")
EVENT = ("id", "kind", "occurred_at", "recorded_at", "data")
ORDER = (
    "id",
    "drug",
    "ordered_at",
    "mg_per_day",
    "mg_per_kg_day",
    "route",
    "status",
    "ended_at",
    "ordered_by",
    "dose_given_as",
    "dose_range",
    "overrides",
)
MILESTONE = (
    "id",
    "milestone_id",
    "title",
    "kind",
    "due_at",
    "grace_until",
    "created_at",
    "cycle",
    "occurrence",
    "idempotency_key",
    "recipients",
    "rule_ids",
    "urgent",
    "status",
    "closed_at",
    "close_reason",
    "reviewed_at",
    "patient_id",
)
ALERT = (
    "id",
    "alert_id",
    "severity",
    "message",
    "raised_at",
    "rule_ids",
    "status",
    "closed_at",
    "closed_by",
)
HEAD = (
    "id",
    "site",
    "clinician",
    "birth_date",
    "sex",
    "weight_kg",
    "pathway_key",
    "state",
    "enrolled_at",
    "facts",
    "state_entered",
    "treatment_start",
    "version",
    "external_id",
    "contact_preferences",
    "updated_at",
)


def _in_time_order(rows: Any, time: str | None = None) -> list[str]:
    """Rows by their time, rows of the same time in a fixed order: both loads order milestones
    by due_at and alerts by raised_at only, and PostgreSQL gives ties in any order (see the
    report: the status page may list two milestones due together either way round)."""
    texts = [json.dumps(row, sort_keys=True, default=str) for row in rows]
    key = time or ("due_at" if any('"due_at"' in t for t in texts) else "raised_at")
    return sorted(texts, key=lambda t: (json.loads(t).get(key, ""), t))


def _shown(view: dict[str, Any]) -> str:
    """A status view, its milestones and alerts of the same time in a fixed order."""
    view = {
        **view,
        "next_milestones": _in_time_order(view["next_milestones"], "due_at"),
        "open_alerts": _in_time_order(view["open_alerts"], "raised_at"),
    }
    return json.dumps(view, sort_keys=True, default=str)


def _same_record(uow_factory, patient_id: str, now: datetime) -> None:
    """The care load holds what the whole record holds (values and types), in the order the
    pathway reads it; the status read shows what the whole record shows."""
    with uow_factory() as uow, uow_factory() as other:
        whole = _in_recorded_order(uow.patients.get(patient_id))
        lean = other.patients.for_care(patient_id)
        assert _row(lean, HEAD) == _row(whole, HEAD)
        lean_orders = {o.id for o in lean.orders}
        assert sorted(json.dumps(_row(r, LAB), default=str) for r in lean.lab_results) == sorted(
            json.dumps(_row(r, LAB), default=str) for r in whole.labs
        )
        lean_history, whole_history = LabHistory(lean.lab_results), LabHistory(whole.labs)
        for code in {r.code for r in whole.labs}:  # the latest of each is the same result
            assert lean_history.latest(code).id == whole_history.latest(code).id, code
        assert [_row(e, EVENT) for e in lean.clinical_events] == [
            _row(e, EVENT) for e in whole.clinical_events
        ]
        orders = {o.id: _row(o, ORDER) for o in whole.orders}  # stopped ones may be left out
        assert [_row(o, ORDER) for o in lean.orders] == [
            orders[o.id] for o in whole.orders if o.status != "stopped" or o.id in lean_orders
        ]
        assert _in_time_order(_row(a, ALERT) for a in lean.alerts) == _in_time_order(
            _row(a, ALERT) for a in whole.alerts if a.status == "open"
        )
        assert _in_time_order(_row(m, MILESTONE) for m in lean.open_milestones()) == (
            _in_time_order(_row(m, MILESTONE) for m in whole.open_milestones())
        )
        by_id = {m.id: _row(m, MILESTONE) for m in whole.milestones}
        assert all(by_id[m.id] == _row(m, MILESTONE) for m in lean.milestones)
        care = care_pathway(whole.pathway_key)
        shown = other.patients.for_status(patient_id)
        assert _shown(status_view(shown, care, now)) == _shown(status_view(whole, care, now))


def _in_recorded_order(patient):
    """The whole record with results and events taken at one moment in the order they were
    recorded (the relationships order by the clinical time only: ties come in any order on
    PostgreSQL, see the report), which is the order the pathway reads them in."""
    patient.labs.sort(key=lambda r: (r.taken_at, r.recorded_at))
    patient.clinical_events.sort(key=lambda e: (e.occurred_at, e.recorded_at))
    return patient


def _enrolled(uow_factory) -> str:
    patient_id = enrolled(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    return patient_id


def _input(step: tuple, now: datetime, last: datetime) -> tuple[str, dict[str, Any]] | None:
    """The use case and its arguments for a step (None for a time step)."""
    moment = {"now": None, "same": last, "earlier": now - timedelta(days=3, microseconds=7)}
    if step[0] == "lab":
        (code, value, unit), when = step[1], step[2]
        return "record_lab_result", {
            "code": code,
            "value": value,
            "unit": unit,
            "taken_at": moment[when],
        }
    if step[0] == "event":
        (kind, data), when = step[1], step[2]
        return "record_clinical_event", {
            "kind": kind,
            "data": dict(data),
            "occurred_at": moment[when],
        }
    if step[0] == "order":
        return "order_medication", dict(step[1])
    if step[0] == "review":
        return "review_patient", {}
    return None


def _answer(uow, use_case: str, patient_id: str, given: dict[str, Any]) -> Any:
    """The service's answer to an input (a refusal as its error), without the new row's id."""
    try:
        view = _call(uow, use_case, patient_id, given)
    except DomainError as refused:
        return json.dumps(["refused", type(refused).__name__, refused.message])
    view = {k: v for k, v in view.items() if k not in ("record_id", "version")}
    return json.dumps(view, sort_keys=True, default=str)


class _WholeRecordUow(SqlAlchemyUnitOfWork):
    """A unit of work whose input loads the whole record (the reference behaviour)."""

    def __enter__(self) -> _WholeRecordUow:
        super().__enter__()
        whole = self.patients.get
        self.patients.for_care = lambda pid: _in_recorded_order(whole(pid))  # type: ignore[method-assign]
        return self


class _WholeRecordProbe(_WholeRecordUow):
    """The reference whose commit writes nothing."""

    def commit(self, answer: Any = None) -> None:
        self.session.flush()  # rolled back when the use case leaves the unit of work


def _whole_answer(uow_factory, patient_id: str, use_case: str, given: dict[str, Any]) -> Any:
    """What the service answers when the input loads the whole record (nothing written)."""
    probe = _WholeRecordProbe(*uow_factory.args, **uow_factory.keywords)
    return _answer(probe, use_case, patient_id, given)


def _written(uow_factory, patient_id: str) -> Any:
    """Every row of the patient's record as written, without row ids and the patient's id."""
    with uow_factory() as uow:
        whole = uow.patients.get(patient_id)
        rows = {
            "head": _row(whole, HEAD[1:]),
            "labs": sorted(json.dumps(_row(r, LAB[1:]), default=str) for r in whole.labs),
            "events": [_row(e, EVENT[1:]) for e in _in_recorded_order(whole).clinical_events],
            "orders": [_row(o, ORDER[1:]) for o in whole.orders],
            "milestones": sorted(
                json.dumps(_row(m, MILESTONE[1:-1]), default=str) for m in whole.milestones
            ),
            "alerts": sorted(json.dumps(_row(a, ALERT[1:]), default=str) for a in whole.alerts),
        }
        row_ids = [patient_id] + [
            r.id
            for kind in ("orders", "alerts", "milestones", "labs")
            for r in getattr(whole, kind)
        ]
    written = json.dumps(rows, default=str)
    for row_id in row_ids:  # events and keys name rows by their random ids
        written = written.replace(row_id, "R")
    return json.loads(written)


def _call(uow, use_case: str, patient_id: str, given: dict[str, Any]) -> Any:
    if use_case == "review_patient":
        return service.review_patient(uow, "dr-a", patient_id)
    return getattr(service, use_case)(uow, "dr-a", patient_id, **given)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_random_histories_decide_and_show_the_same_from_the_care_load(
    uow_factory, clock, database_url
):
    @PROFILE
    @given(steps=STEPS)
    def run(steps: list[tuple]) -> None:
        clock.set(START)
        patient_id, twin = _enrolled(uow_factory), _enrolled(uow_factory)
        twin_factory = partial(_WholeRecordUow, *uow_factory.args, **uow_factory.keywords)
        last = clock.now()
        for step in steps:
            if step[0] == "advance":
                clock.advance(minutes=step[1], microseconds=step[2])
                continue
            now = clock.advance(microseconds=1)  # inputs are recorded at distinct moments
            use_case, given_ = _input(step, now, last)
            expected = _whole_answer(uow_factory, patient_id, use_case, given_)
            got = _answer(uow_factory(), use_case, patient_id, given_)
            assert got == expected, (step, got, expected)
            reference = _answer(twin_factory(), use_case, twin, given_)
            assert got.replace(patient_id, "P") == reference.replace(twin, "P"), step
            last = given_.get("taken_at") or given_.get("occurred_at") or now
            _same_record(uow_factory, patient_id, clock.now())
            assert _written(uow_factory, patient_id) == _written(uow_factory, twin), step

    run()


def test_two_inputs_for_one_patient_in_one_batch_answer_as_one_by_one(uow_factory, clock):
    clock.set(START)
    batched, single = _enrolled(uow_factory), _enrolled(uow_factory)
    inputs = [
        {"kind": "lab", "code": "ALT", "value": 30.0, "unit": "U/L"},
        {"kind": "event", "event": "severity_scores", "data": {"meld": 30.0}},
        {"kind": "order", "drug": "prednisolone", "mg_per_day": 30.0},
        {"kind": "lab", "code": "HBSAG", "value": "positive"},
        {"kind": "order", "drug": "azathioprine", "mg_per_kg_day": 1},
        {"kind": "event", "event": "cirrhosis_diagnosed", "data": {"method": "biopsy"}},
        {"kind": "order", "drug": "budesonide", "mg_per_day": 9},  # SAFE-BUD-CIRRHOSIS
        {"kind": "lab", "code": "ALT", "value": 25, "unit": "U/L"},
    ]
    answers = record_clinical_inputs(
        uow_factory(), "dr-a", [{**item, "patient_id": batched} for item in inputs]
    )
    one_by_one = record_clinical_inputs(
        uow_factory(), "dr-a", [{**item, "patient_id": single} for item in inputs[:1]]
    )
    for item in inputs[1:]:
        one_by_one += record_clinical_inputs(
            uow_factory(), "dr-a", [{**item, "patient_id": single}]
        )

    def plain(answer: dict[str, Any]) -> str:
        kept = {k: v for k, v in answer.items() if k not in ("record_id", "version", "index")}
        return json.dumps({**kept, "patient_id": None}, sort_keys=True, default=str)

    assert [plain(a) for a in answers] == [plain(a) for a in one_by_one]
    _same_record(uow_factory, batched, clock.now())
    with uow_factory() as uow:
        whole, twin = uow.patients.get(batched), uow.patients.get(single)
        version = whole.version
        assert sorted(o.drug for o in whole.orders) == sorted(o.drug for o in twin.orders)
        assert whole.facts == twin.facts
    accepted = [True, True, True, True, False, True, False, True]  # IND-AZA-DELAY, SAFE-BUD-...
    assert [a["accepted"] for a in answers] == accepted
    assert {a["version"] for a in answers if a["accepted"]} == {version}


def test_a_writer_that_won_the_race_is_still_detected_after_a_second_care_load(uow_factory, clock):
    clock.set(START)
    patient_id = _enrolled(uow_factory)
    with uow_factory() as uow:
        first = uow.patients.for_care(patient_id)
        assert uow.patients.for_care(patient_id) is first  # the tracked copy, reused
        service.record_lab_result(
            uow_factory(), "lab", patient_id, code="ALT", value=50, unit="U/L"
        )
        care = care_pathway(first.pathway_key)
        care.record_lab_result(first, "ALT", 60, "U/L", clock.now(), clock.now(), "lab")
        with pytest.raises(ConcurrencyConflict):
            uow.commit()
    with uow_factory() as uow:
        values = sorted(r.value for r in uow.patients.get(patient_id).labs if r.code == "ALT")
    assert values == [50.0, 420.0]  # the winner's result, not the loser's


def test_a_long_history_loads_whole_for_care(uow_factory, clock):
    """Thousands of events and results (unicode, quotes and CR-LF in the stored data) load
    for care exactly as the whole record holds them."""
    from sqlalchemy import insert

    from engine.adapters.orm import clinical_events, lab_results

    clock.set(START)
    patient_id = _enrolled(uow_factory)
    moments = [
        START - timedelta(days=3000) + timedelta(hours=k, microseconds=k) for k in range(3000)
    ]
    with uow_factory() as uow:
        uow.session.execute(
            insert(clinical_events),
            [
                {
                    "id": f"e{k:031d}",
                    "patient_id": patient_id,
                    "kind": "elastography",
                    "occurred_at": at,
                    "recorded_at": at,
                    "data": {"kpa": 9.0 + k % 3, "note": f'\u8089 "{k}"\r\n\\'},
                }
                for k, at in enumerate(moments)
            ],
        )
        uow.session.execute(
            insert(lab_results),
            [
                {
                    "id": f"l{k:031d}",
                    "patient_id": patient_id,
                    "code": "ALT",
                    "value": float(20 + k % 40),
                    "unit": "U/L",
                    "reported_value": str(20 + k % 40),
                    "source": "import",
                    "taken_at": at,
                    "recorded_at": at,
                }
                for k, at in enumerate(moments)
            ],
        )
        uow.session.commit()
    _same_record(uow_factory, patient_id, clock.now())


@pytest.mark.postgres
@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "America/St_Johns"])
def test_a_session_in_another_time_zone_loads_the_same_moments(postgres_url, zone):
    """json_build_object writes a timestamptz in the session's zone (+14:00, -03:30 here)."""
    upgrade(postgres_url)
    engine = make_engine(postgres_url, connect_args={"options": f"-c timezone={zone}"})
    clock = ManualClock(START)
    uow_factory = partial(SqlAlchemyUnitOfWork, session_factory(engine), clock)
    try:
        with uow_factory() as uow:
            assert uow.session.execute(text("show timezone")).scalar() == zone
        patient_id = _enrolled(uow_factory)
        clock.advance(hours=15, microseconds=876543)
        service.record_clinical_event(
            uow_factory(), "dr-a", patient_id, kind="severity_scores", data={"meld": 30.0}
        )
        service.order_medication(
            uow_factory(), "dr-a", patient_id, drug="prednisolone", mg_per_day=30
        )
        _same_record(uow_factory, patient_id, clock.now())
        oldest = service.enrol_patient(  # local mean time then: offsets with seconds
            uow_factory(),
            "dr-test",
            site="north",
            clinician="dr-a",
            birth_date="1899-12-31",
            sex="M",
            weight_kg=70.0,
            facts={"cirrhosis": False},
        )["patient_id"]
        first_moment = datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
        service.record_clinical_event(
            uow_factory(),
            "dr-a",
            oldest,
            kind="elastography",
            data={"kpa": 9.0},
            occurred_at=first_moment,
        )
        _same_record(uow_factory, oldest, clock.now())
        with uow_factory() as uow:
            events = uow.patients.for_care(oldest).clinical_events
            assert [e.occurred_at for e in events] == [first_moment]
    finally:
        engine.dispose()


def test_a_care_load_after_a_rollback_is_the_patient_as_stored(uow_factory, clock):
    clock.set(START)
    patient_id = _enrolled(uow_factory)
    with uow_factory() as uow:
        loaded = uow.patients.for_care(patient_id)
        stored = sorted(r.id for r in loaded.lab_results)
        care = care_pathway(loaded.pathway_key)
        care.record_lab_result(loaded, "ALT", 50, "U/L", clock.now(), clock.now(), "lab")
        uow.rollback()  # e.g. a rehearsal (order review), a refusal's audit, a lost race
        again = uow.patients.for_care(patient_id)
        assert sorted(r.id for r in again.lab_results) == stored


@pytest.mark.postgres
@pytest.mark.xfail(
    strict=True,
    reason="R2: results of one batch taken at one moment tie on (taken_at, recorded_at); "
    "PostgreSQL's sort gives them back in any order, so the latest is not the last recorded",
)
def test_results_of_one_batch_taken_at_one_moment_keep_the_order_they_were_recorded(
    postgres_url,
):
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    clock = ManualClock(START)
    uow_factory = partial(SqlAlchemyUnitOfWork, session_factory(engine), clock)
    try:
        patient_id = _enrolled(uow_factory)
        for day in range(30):  # enough rows for the sort to be a quicksort, not an insertion sort
            clock.advance(days=1)
            service.record_lab_result(
                uow_factory(), "lab", patient_id, code="AST", value=30 + day, unit="U/L"
            )
        taken = clock.now() - timedelta(hours=1)
        values = [100.0 * k for k in range(1, 10)]  # each one amends the one before
        items = [
            {"patient_id": patient_id, "code": "ALT", "value": v, "unit": "U/L", "taken_at": taken}
            for v in values
        ]
        assert all(a["accepted"] for a in service.record_lab_results(uow_factory(), "lab", items))
        with uow_factory() as uow:
            lean = uow.patients.for_care(patient_id)
            series = LabHistory(lean.lab_results).series("ALT")
        assert [r.value for r in series if r.taken_at == taken] == values
    finally:
        engine.dispose()


def test_each_draft_of_an_order_review_meets_the_patient_as_stored(uow_factory, clock, monkeypatch):
    from engine.services import order_review
    from engine.services.access_policy import Principal

    clock.set(START)
    patient_id = _enrolled(uow_factory)
    with uow_factory() as uow:
        whole = uow.patients.get(patient_id)
        stored = (sorted(r.id for r in whole.labs), [o.id for o in whole.orders], whole.state)
    seen: list[tuple] = []
    review = order_review._review

    def noting(care, patient, draft, now):  # a spy: the real review, with what it was given
        seen.append(
            (
                sorted(r.id for r in patient.lab_results),
                [o.id for o in patient.orders],
                patient.state,
            )
        )
        return review(care, patient, draft, now)

    monkeypatch.setattr(order_review, "_review", noting)
    drafts = [
        order_review.Draft(ref=f"d{k}", text="prednisolone", mg_per_day=30.0) for k in range(2)
    ]
    order_review.review_drafts(
        uow_factory(),
        Principal("ehr-1", "ehr", "ehr", site="north"),
        patient_id=patient_id,
        drafts=drafts,
        service="aih-order-review",
        hook="order-select",
        hook_instance="r2",
    )
    assert seen == [stored, stored]


def test_a_dose_of_seventeen_digits_loads_as_written(uow_factory, clock):
    """A float column nested by SQLite's json_object kept only 15 significant digits."""
    from sqlalchemy import update

    from engine.adapters.orm import medication_orders

    clock.set(START)
    patient_id = _enrolled(uow_factory)
    service.order_medication(uow_factory(), "dr-a", patient_id, drug="prednisolone", mg_per_day=30)
    with uow_factory() as uow:  # a row written before doses were rounded, or by an import
        uow.session.execute(
            update(medication_orders)
            .where(medication_orders.c.patient_id == patient_id)
            .values(mg_per_day=0.1 + 0.2 + 29.7, mg_per_kg_day=(0.1 + 0.2 + 29.7) / 64.3)
        )
        uow.session.commit()
    _same_record(uow_factory, patient_id, clock.now())


def test_a_re_order_after_a_stop_completes_what_the_whole_record_completes(uow_factory, clock):
    clock.set(START)
    whole_factory = partial(_WholeRecordUow, *uow_factory.args, **uow_factory.keywords)
    children = []
    for factory in (uow_factory, whole_factory):
        child = service.enrol_patient(
            factory(),
            "dr-test",
            site="north",
            clinician="dr-a",
            birth_date="2014-05-01",
            sex="F",
            weight_kg=30.0,
            facts={"cirrhosis": False},
        )["patient_id"]
        record_baseline(factory, child, serology=True)
        children.append(child)
    steps = [
        ("order_medication", {"drug": "prednisolone", "mg_per_kg_day": 2}),
        (
            "record_clinical_event",
            {"kind": "medication_stopped", "data": {"drug": "prednisolone", "reason": "vomiting"}},
        ),
        ("order_medication", {"drug": "prednisolone", "mg_per_kg_day": 1.5}),
    ]
    for use_case, given_ in steps:
        clock.advance(days=1)
        lean = _answer(uow_factory(), use_case, children[0], given_)
        whole = _answer(whole_factory(), use_case, children[1], given_)
        assert lean.replace(children[0], "P") == whole.replace(children[1], "P"), use_case
