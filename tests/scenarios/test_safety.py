"""Hard blocks and safety alerts: a refused action leaves the patient exactly as it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.domain.errors import EventNotAllowed, InvalidInput
from tests.fixtures_domain import (
    Chart,
    covers,
    make_patient,
    normal_labs,
    on_standard_induction,
    screened,
    start_azathioprine,
    start_prednisolone,
    sustained_remission,
    to_maintenance,
    to_taper_7_5mg,
)


def _in_second_line() -> Chart:
    chart = on_standard_induction()
    chart.event("intolerance", drug="azathioprine")
    assert chart.state == "second_line.assessment"
    return chart


# ---- SAFE-BUD-CIRRHOSIS ------------------------------------------------------------------


@covers("SAFE-BUD-CIRRHOSIS", "IND-BUD")
def test_budesonide_refused_in_cirrhosis_with_rule_id():
    chart = make_patient(cirrhosis=True)
    screened(chart)

    error = chart.refused(lambda: chart.order("budesonide", mg_per_day=9), "SAFE-BUD-CIRRHOSIS")

    assert error.block_id == "budesonide-in-cirrhosis"
    assert error.rule_ids == ["SAFE-BUD-CIRRHOSIS"]
    assert error.sources == ["S1"]
    assert error.message.startswith("SAFE-BUD-CIRRHOSIS: ")
    assert chart.state == "screening"
    assert error.audit.detail["drug"] == "budesonide"


@covers("SAFE-BUD-CIRRHOSIS")
def test_budesonide_refused_in_cirrhosis_at_any_stage_and_prednisolone_is_allowed():
    chart = make_patient(cirrhosis=True)
    screened(chart)
    start_prednisolone(chart)

    chart.refused(lambda: chart.order("budesonide", mg_per_day=9), "SAFE-BUD-CIRRHOSIS")

    assert chart.state == "induction.prednisolone"
    assert set(chart.active_drugs()) == {"prednisolone"}


# ---- SCR-TPMT ------------------------------------------------------------------------------


@covers("SCR-TPMT")
def test_azathioprine_refused_before_tpmt_known():
    chart = make_patient()
    chart.labs(ALT=400, AST=300, IgG=25, BILI=30)
    start_prednisolone(chart)
    chart.advance(days=14)

    error = chart.refused(lambda: start_azathioprine(chart), "SCR-TPMT")

    assert error.block_id == "aza-before-tpmt"
    assert chart.pending("start-azathioprine") is not None  # still outstanding


@covers("SCR-TPMT")
def test_azathioprine_refused_with_deficient_tpmt():
    chart = make_patient()
    screened(chart, tpmt=10)
    start_prednisolone(chart)
    chart.advance(days=14)

    error = chart.refused(lambda: start_azathioprine(chart), "SCR-TPMT")

    assert error.block_id == "aza-tpmt-deficient"


@covers("SCR-TPMT")
def test_mercaptopurine_is_refused_like_azathioprine_before_tpmt_known():
    chart = make_patient()

    chart.refused(lambda: chart.order("6-mercaptopurine", mg_per_day=50), "SCR-TPMT")


@covers("SCR-TPMT")
def test_intermediate_tpmt_allows_azathioprine_with_a_warning():
    chart = make_patient()
    screened(chart, tpmt=20)
    start_prednisolone(chart)
    chart.advance(days=14)  # IND-AZA-DELAY

    start_azathioprine(chart, mg_per_kg_day=1)

    assert "azathioprine" in chart.active_drugs()
    assert chart.alert("tpmt-intermediate").rule_ids == ["SCR-TPMT"]


@covers("SCR-TPMT")
@pytest.mark.parametrize(("activity", "allowed"), [(16.9, False), (17, True), (60, True)])
def test_tpmt_band_boundaries_decide_the_azathioprine_block(activity, allowed):
    chart = make_patient()
    screened(chart, tpmt=activity)
    start_prednisolone(chart)
    chart.advance(days=14)  # IND-AZA-DELAY

    if allowed:
        start_azathioprine(chart)
        assert "azathioprine" in chart.active_drugs()
    else:
        chart.refused(lambda: start_azathioprine(chart), "SCR-TPMT")


# ---- SAFE-MMF-PREG / PREG-AZA ------------------------------------------------------------


@covers("SAFE-MMF-PREG")
def test_mmf_refused_in_pregnancy():
    chart = _in_second_line()
    chart.event("pregnancy")

    error = chart.refused(
        lambda: chart.order("mycophenolate_mofetil", mg_per_day=1000), "SAFE-MMF-PREG"
    )

    assert error.block_id == "mmf-in-pregnancy"
    assert chart.state == "second_line.assessment"


@covers("SAFE-MMF-PREG")
def test_mmf_allowed_again_after_pregnancy_ended():
    chart = _in_second_line()
    chart.event("pregnancy")
    chart.event("pregnancy_ended")

    chart.order("mmf", mg_per_day=1000)

    assert chart.state == "second_line.mmf"
    assert chart.facts["pregnant"] is False


@covers("SAFE-MMF-PREG")
def test_pregnancy_on_mmf_raises_a_critical_alert():
    chart = _in_second_line()
    chart.order("mmf", mg_per_day=1000)

    outcome = chart.event("pregnancy")

    assert "mmf-in-pregnancy" in outcome.alerts_raised
    assert chart.alert("mmf-in-pregnancy").severity == "critical"


@covers("PREG-AZA")
def test_azathioprine_in_pregnancy_is_allowed_but_needs_a_risk_benefit_decision():
    chart = on_standard_induction()

    outcome = chart.event("pregnancy")

    assert "azathioprine" in chart.active_drugs()
    assert "aza-in-pregnancy" in outcome.alerts_raised
    assert chart.alert("aza-in-pregnancy").rule_ids == ["PREG-AZA"]
    resolved = chart.event("pregnancy_ended")
    assert "aza-in-pregnancy" in resolved.alerts_resolved


@covers("PREG-AZA", "SCR-TPMT")
def test_azathioprine_may_be_started_in_pregnancy():
    chart = make_patient(pregnant=True)
    screened(chart)
    start_prednisolone(chart)
    chart.advance(days=14)  # IND-AZA-DELAY

    start_azathioprine(chart)

    assert "aza-in-pregnancy" in chart.alert_ids()


# ---- SAFE-AZA-ADV --------------------------------------------------------------------------


@covers("SAFE-AZA-ADV")
def test_azathioprine_in_cirrhosis_warns_of_hepatotoxicity():
    chart = make_patient(cirrhosis=True)
    screened(chart)
    start_prednisolone(chart)
    chart.advance(days=14)  # IND-AZA-DELAY

    outcome = start_azathioprine(chart)

    assert "aza-advanced-liver-disease" in outcome.alerts_raised
    assert chart.alert("aza-advanced-liver-disease").rule_ids == ["SAFE-AZA-ADV"]


@covers("SAFE-AZA-ADV")
def test_decompensation_on_azathioprine_warns_and_no_warning_without_advanced_disease():
    chart = make_patient(cirrhosis=False)
    screened(chart)
    start_prednisolone(chart)
    chart.advance(days=14)  # IND-AZA-DELAY
    start_azathioprine(chart)
    assert "aza-advanced-liver-disease" not in chart.alert_ids()

    chart.event("decompensation", feature="ascites")

    assert "aza-advanced-liver-disease" in chart.alert_ids()


# ---- SAFE-OCA -------------------------------------------------------------------------------


@covers("SAFE-OCA")
@pytest.mark.parametrize("name", ["obeticholic_acid", "Ocaliva", "OCA", "obeticholic acid"])
def test_obeticholic_acid_is_refused_under_any_name(name):
    chart = on_standard_induction()

    error = chart.refused(lambda: chart.order(name, mg_per_day=10), "SAFE-OCA")

    assert error.block_id == "obeticholic-acid-in-aih"
    assert error.sources == ["S5"]
    assert "obeticholic_acid" not in {o.drug for o in chart.patient.orders}


# ---- SAFE-EARLY-STOP / MON-BIOPSY / SAFE-PARTIAL -------------------------------------------


@covers("SAFE-EARLY-STOP", "MON-BIOPSY", "SAFE-PARTIAL")
def test_stop_refused_without_sustained_response_and_biopsy():
    chart = to_maintenance()
    sustained_remission(chart, 6)

    error = chart.refused(
        lambda: chart.event("stop_requested"), "SAFE-EARLY-STOP", "MON-BIOPSY", "SAFE-PARTIAL"
    )

    assert error.block_id == "early-stop"
    assert chart.state == "maintenance"
    assert "azathioprine" in chart.active_drugs()


@covers("SAFE-EARLY-STOP", "MON-BIOPSY")
def test_stop_refused_after_two_years_normal_without_a_biopsy():
    chart = to_maintenance()
    sustained_remission(chart, 25)

    chart.refused(lambda: chart.event("stop_requested"), "SAFE-EARLY-STOP")


@covers("SAFE-EARLY-STOP", "MON-BIOPSY")
def test_stop_refused_when_the_biopsy_shows_histological_activity():
    chart = to_maintenance()
    sustained_remission(chart, 25)
    chart.event("biopsy_resulted", histological_activity=True, ishak_grade=5)

    chart.refused(lambda: chart.event("stop_requested"), "SAFE-EARLY-STOP")


@covers("SAFE-EARLY-STOP", "MON-BIOPSY")
def test_stop_refused_when_the_clean_biopsy_predates_the_current_response():
    chart = to_taper_7_5mg()
    chart.event("biopsy_resulted", histological_activity=False)  # IgG still raised
    chart.advance(months=3, days=1)
    chart.order("prednisolone", mg_per_day=5)
    normal_labs(chart)
    assert chart.state == "maintenance"
    sustained_remission(chart, 25)

    chart.refused(lambda: chart.event("stop_requested"), "SAFE-EARLY-STOP")


@covers("SAFE-EARLY-STOP")
def test_stop_refused_when_the_response_was_broken_by_a_raised_alt():
    chart = to_maintenance()
    sustained_remission(chart, 20)
    chart.advance(days=10)
    chart.lab("ALT", 80)  # a flare restarts the clock
    sustained_remission(chart, 6)
    chart.event("biopsy_resulted", histological_activity=False)

    chart.refused(lambda: chart.event("stop_requested"), "SAFE-EARLY-STOP")


@covers("SAFE-EARLY-STOP")
def test_stop_refused_outside_maintenance():
    chart = on_standard_induction()

    chart.refused(lambda: chart.event("stop_requested"), "SAFE-EARLY-STOP")

    assert chart.state == "induction.prednisolone"


@covers("SAFE-EARLY-STOP", "MON-BIOPSY", "MON-LIFELONG")
def test_stop_allowed_after_two_years_normal_and_clean_biopsy_moves_to_withdrawn():
    chart = to_maintenance()
    sustained_remission(chart, 25)
    chart.event("biopsy_resulted", histological_activity=False, ishak_grade=1)

    outcome = chart.event("stop_requested")

    assert chart.state == "withdrawn"
    assert set(outcome.transition.rules) == {"SAFE-EARLY-STOP", "MON-BIOPSY"}
    assert chart.active_drugs() == {}
    assert {o.status for o in chart.patient.orders} <= {"stopped", "superseded"}
    assert chart.pending("off-treatment-monitoring") is not None


@covers("SAFE-PARTIAL", "MON-RISK")
def test_partial_response_is_never_accepted_as_maintenance():
    chart = to_maintenance()
    chart.lab("ALT", 70)  # persistent elevation on maintenance

    assert "partial-response" in chart.alert_ids()
    normal_labs(chart)
    assert "partial-response" not in chart.alert_ids()


# ---- review findings: budesonide outside IND-BUD, final states, time bounds -----------------


@covers("IND-BUD")
def test_budesonide_without_high_steroid_risk_needs_a_reason():
    chart = make_patient()
    screened(chart)

    error = chart.refused(lambda: chart.order("budesonide", mg_per_day=9), "IND-BUD")

    assert error.block_id == "budesonide-without-high-steroid-risk" and error.overridable


@covers("SAFE-BUD-CIRRHOSIS")
@pytest.mark.parametrize("fact", ["decompensated", "acute_severe"])
def test_budesonide_is_refused_in_decompensated_or_acute_severe_disease(fact):
    chart = make_patient(high_steroid_risk=True, **{fact: True})
    screened(chart)

    error = chart.refused(lambda: chart.order("budesonide", mg_per_day=9), "SAFE-BUD-CIRRHOSIS")

    assert not error.overridable


@covers("SAFE-BUD-CIRRHOSIS", "IND-STD")
def test_budesonide_stopped_and_replaced_by_prednisolone_when_cirrhosis_is_found():
    chart = make_patient(high_steroid_risk=True)
    screened(chart)
    chart.order("budesonide", mg_per_day=9)
    chart.event("cirrhosis_diagnosed", method="elastography")
    assert chart.alert("budesonide-in-cirrhosis").severity == "critical"

    chart.event("medication_stopped", drug="budesonide", reason="cirrhosis on elastography")
    chart.order("prednisolone", mg_per_day=30)

    assert chart.state == "induction.prednisolone"
    assert "budesonide" not in chart.active_drugs()
    assert "budesonide-in-cirrhosis" not in chart.alert_ids()


@covers("SCR-TPMT")
def test_an_override_cannot_lift_a_dose_above_the_plausible_ceiling():
    chart = make_patient()
    screened(chart)
    chart.order("prednisolone", mg_per_day=30)
    chart.advance(days=14)

    error = chart.refused(
        lambda: chart.order(
            "azathioprine",
            mg_per_kg_day=1000,
            overrides={"azathioprine-standard": "documented"},
        )
    )

    assert error.block_id == "azathioprine-plausible-ceiling" and not error.overridable


@covers("SAFE-MMF-PREG")
def test_an_older_pregnancy_end_entered_late_does_not_undo_a_newer_pregnancy():
    chart = make_patient()
    screened(chart)
    chart.event("pregnancy", occurred_at=chart.now - timedelta(days=20))
    chart.event("pregnancy_ended", occurred_at=chart.now - timedelta(days=120))

    assert chart.facts["pregnant"] is True
    chart.refused(lambda: chart.order("mmf", mg_per_day=1000), "SAFE-MMF-PREG")


@covers("MON-LIFELONG")
def test_a_discharged_patient_takes_no_more_orders():
    chart = make_patient()
    screened(chart)
    chart.event("discharged", reason="moved to another service")

    with pytest.raises(EventNotAllowed):
        chart.order("prednisolone", mg_per_day=30)


@covers("IND-AZA-DELAY")
def test_an_order_dated_before_enrolment_or_birth_is_refused():
    chart = make_patient()
    screened(chart)

    with pytest.raises(InvalidInput):
        chart.order("prednisolone", mg_per_day=30, ordered_at=chart.now - timedelta(days=3650))
    with pytest.raises(InvalidInput):
        chart.lab("ALT", 50, taken_at=datetime(1970, 1, 1, tzinfo=UTC))
