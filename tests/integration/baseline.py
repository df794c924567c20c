"""The baseline results a screened test patient has (SCR-BASE, SCR-TPMT), recorded through the
service as a lab system sends them: every quantitative result with its unit."""

from __future__ import annotations

from engine.services import patients as service

BASELINE = (
    ("ALT", 420, "U/L"),
    ("AST", 310, "U/L"),
    ("IgG", 24, "g/L"),
    ("BILI", 25, "umol/L"),
    ("TPMT", 31, "U/mL"),
)
HBV_SEROLOGY = (("HBSAG", "negative"), ("ANTI_HBC", "negative"), ("ANTI_HBS", "positive"))


def record_baseline(uow_factory, patient_id: str, *, serology: bool = False, **values) -> None:
    """ALT, AST, IgG, bilirubin and TPMT (a keyword replaces a value, e.g. TPMT=5), and the
    hepatitis B serology when asked."""
    for code, value, unit in BASELINE:
        value = values.get(code, value)
        service.record_lab_result(
            uow_factory(), "lab", patient_id, code=code, value=value, unit=unit
        )
    for code, value in HBV_SEROLOGY if serology else ():
        service.record_lab_result(uow_factory(), "lab", patient_id, code=code, value=value)


def enrolled(uow_factory) -> str:
    """A woman of 47 at site north with no cirrhosis, enrolled (screening); her id."""
    return service.enrol_patient(
        uow_factory(),
        "dr-test",
        site="north",
        clinician="dr-a",
        birth_date="1979-04-02",
        sex="F",
        weight_kg=64,
        facts={"cirrhosis": False},
    )["patient_id"]
