"""The dose model: every order states one dose, within its drug's range for the stage, or a
clinician overrides an overridable range with a reason; a later weight re-checks the doses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.domain.errors import InvalidInput
from tests.fixtures_domain import (
    Chart,
    covers,
    make_patient,
    on_standard_induction,
    screened,
    start_prednisolone,
)


def _screened(**patient) -> Chart:
    chart = make_patient(**patient)
    screened(chart)
    return chart


@covers("ASV-IV")
def test_iv_steroid_of_40mg_for_70kg_is_refused_below_1mg_per_kg():
    chart = _screened(weight_kg=70)

    error = chart.refused(
        lambda: chart.order("methylprednisolone", mg_per_day=40, route="iv"), "ASV-IV"
    )

    assert error.block_id == "methylprednisolone-iv-acute-severe" and not error.overridable
    assert "at least 1 mg/kg/day" in error.message


@covers("ASV-IV")
def test_iv_steroid_of_1mg_per_kg_starts_acute_severe_care():
    chart = _screened(weight_kg=70)

    chart.order("methylprednisolone", mg_per_kg_day=1, route="iv")

    assert chart.state == "acute_severe"
    assert chart.active_drugs()["methylprednisolone"].mg_per_day == 70


@covers("IND-STD")
@pytest.mark.parametrize(
    "dose",
    [
        {},
        {"mg_per_day": 30, "mg_per_kg_day": 1},  # both given (and disagreeing at 70 kg)
        {"mg_per_day": 0},
        {"mg_per_kg_day": 1e308},
    ],
)
def test_an_order_without_exactly_one_plausible_dose_is_refused(dose):
    chart = _screened()
    before = chart.snapshot()

    with pytest.raises(InvalidInput):
        chart.order("prednisolone", **dose)

    assert chart.snapshot() == before


@covers("IND-STD")
@pytest.mark.parametrize(("mg", "allowed"), [(27, True), (33, True), (20, False), (60, False)])
def test_induction_prednisolone_is_30mg_within_tablet_rounding(mg, allowed):
    chart = _screened()

    if allowed:
        chart.order("prednisolone", mg_per_day=mg)
        assert chart.state == "induction.prednisolone"
    else:
        error = chart.refused(lambda: chart.order("prednisolone", mg_per_day=mg), "IND-STD")
        assert error.block_id == "prednisolone-induction" and error.overridable


@covers("IND-STD", "TAP-AZA")
@pytest.mark.parametrize(("per_kg", "allowed"), [(0.5, False), (1, True), (2, True), (3, False)])
def test_azathioprine_is_1_to_2_mg_per_kg(per_kg, allowed):
    chart = _screened()
    start_prednisolone(chart)
    chart.advance(days=14)

    if allowed:
        chart.order("azathioprine", mg_per_kg_day=per_kg)
        assert chart.active_drugs()["azathioprine"].dose_range == "azathioprine-standard"
    else:
        chart.refused(lambda: chart.order("azathioprine", mg_per_kg_day=per_kg), "TAP-AZA")


@covers("IND-BUD")
def test_budesonide_above_3mg_three_times_daily_is_refused_without_override():
    chart = _screened(high_steroid_risk=True)

    error = chart.refused(lambda: chart.order("budesonide", mg_per_day=12), "IND-BUD")

    assert not error.overridable


@covers("IND-STD")
def test_an_overridden_dose_is_kept_with_its_reason_and_audited():
    chart = _screened()

    chart.order(
        "prednisolone",
        mg_per_day=40,
        overrides={"prednisolone-induction": "severe hepatitis, 40 mg by consultant decision"},
    )

    order = chart.active_drugs()["prednisolone"]
    assert order.overrides == ["prednisolone-induction"] and order.dose_given_as == "mg_per_day"
    audited = [a for a in chart.patient.audit if a.action == "safety_rule_overridden"]
    assert audited[0].rule_ids == ("IND-STD",)
    assert audited[0].reason == "severe hepatitis, 40 mg by consultant decision"


@covers("IND-STD", "TAP-AZA")
def test_a_lower_weight_recorded_later_flags_the_azathioprine_dose():
    chart = _screened(weight_kg=75)
    start_prednisolone(chart)
    chart.advance(days=14)
    chart.order("azathioprine", mg_per_day=150)  # 2 mg/kg at 75 kg
    assert "azathioprine-standard" not in chart.alert_ids()

    chart.advance(days=60)
    outcome = chart.event("weight_recorded", weight_kg=50)  # now 3 mg/kg

    assert "azathioprine-standard" in outcome.alerts_raised
    assert "3 mg/kg/day" in chart.alert("azathioprine-standard").message


@covers("SL-MMF")
def test_mmf_starts_at_1g_and_the_step_up_to_maintenance_is_due_at_4_weeks():
    chart = on_standard_induction()
    chart.event("intolerance", drug="azathioprine")
    chart.refused(lambda: chart.order("mmf", mg_per_day=2000), "SL-MMF")  # not the start dose
    chart.order("mmf", mg_per_day=1000)
    step_up = chart.pending("mmf-step-up")
    assert step_up.due_at == chart.now + timedelta(weeks=4)

    chart.advance(weeks=4)
    chart.order("mmf", mg_per_day=1500)

    assert chart.milestones("mmf-step-up")[0].status == "completed"


@covers("SL-TAC")
def test_tacrolimus_starts_at_0_075_mg_per_kg_then_is_kept_at_1_to_6_mg():
    chart = on_standard_induction()
    chart.event("intolerance", drug="azathioprine")
    chart.refused(lambda: chart.order("tacrolimus", mg_per_day=20), "SL-TAC")

    chart.order("tacrolimus", mg_per_kg_day=0.075)
    chart.advance(weeks=4)
    chart.order("tacrolimus", mg_per_day=3)

    assert chart.active_drugs()["tacrolimus"].mg_per_day == 3
    chart.refused(lambda: chart.order("tacrolimus", mg_per_day=20), "SL-TAC")
