"""Long term: maintenance, withdrawal, relapse and re-treatment."""

from __future__ import annotations

from tests.fixtures_domain import (
    covers,
    normal_labs,
    start_prednisolone,
    sustained_remission,
    to_maintenance,
    withdrawn,
)


@covers("LT-MAINT", "MON-LIFELONG")
def test_maintenance_keeps_treatment_and_monthly_monitoring_open_ended():
    chart = to_maintenance()

    assert chart.cp.pathway.states["maintenance"].on_treatment
    assert {"prednisolone", "azathioprine"} <= set(chart.active_drugs())
    assert "monthly-aminotransferases" in chart.pending_ids()
    assert "LT-MAINT" in chart.cp.pathway.states["maintenance"].rules


@covers("LT-RELAPSE-RISK")
def test_relapse_after_withdrawal():
    chart = withdrawn()
    chart.advance(months=3)
    normal_labs(chart)
    assert chart.state == "withdrawn"

    chart.advance(months=2)
    outcome = chart.lab("ALT", 120)

    assert chart.state == "relapse"
    assert outcome.transition.rules == ("LT-RELAPSE-RISK",)
    assert chart.milestones("off-treatment-monitoring", "cancelled")


@covers("LT-RELAPSE-RISK")
def test_raised_igg_alone_off_treatment_is_a_relapse():
    chart = withdrawn()
    chart.advance(months=1)

    chart.lab("IgG", 19)

    assert chart.state == "relapse"


@covers("LT-MAINT", "IND-STD")
def test_relapse_is_re_treated_with_prednisolone_from_a_new_baseline():
    chart = withdrawn()
    first_start = chart.patient.treatment_start
    chart.advance(months=4)
    chart.labs(ALT=300, AST=250, IgG=22)
    assert chart.state == "relapse"
    chart.advance(days=2)

    outcome = start_prednisolone(chart)

    assert chart.state == "induction.prednisolone"
    assert set(outcome.transition.rules) == {"LT-MAINT", "IND-STD"}
    assert chart.patient.treatment_start == chart.now != first_start
    # The relapse ALT is the new baseline: 40% fall at 4 weeks is non-response.
    chart.advance(weeks=4)
    chart.lab("ALT", 180)
    assert chart.state == "second_line.assessment"


@covers("LT-RELAPSE-RISK", "MON-BIOPSY")
def test_portal_plasma_cells_on_the_withdrawal_biopsy_flag_relapse_risk():
    chart = to_maintenance()
    sustained_remission(chart, 25)
    chart.event(
        "biopsy_resulted", histological_activity=False, ishak_grade=2, portal_plasma_cells=True
    )

    outcome = chart.event("stop_requested")

    assert chart.state == "withdrawn"
    assert "relapse-risk-at-withdrawal" in outcome.alerts_raised
    assert chart.alert("relapse-risk-at-withdrawal").rule_ids == ["LT-RELAPSE-RISK"]


@covers("LT-RELAPSE-RISK")
def test_clean_withdrawal_biopsy_raises_no_relapse_risk_flag():
    chart = withdrawn()

    assert "relapse-risk-at-withdrawal" not in chart.alert_ids()
