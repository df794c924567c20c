"""The scripted clinical courses, one plan per trajectory (`simulation.trajectories`).

A plan is a generator over a `TreatedPatient`: it records inputs, checks the engine's answer,
and yields how many (jittered) days to wait, or an `Until` to wait for the engine itself (the
review sweep) to move the patient.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from engine.domain.durations import parse_duration
from simulation.clinical_courses import TreatedPatient
from simulation.lab_courses import Course, Until, stage_in
from simulation.patient import Plan
from simulation.trajectories import in_family


def _adult_birth(p: TreatedPatient, low: int = 19, high: int = 75) -> date:
    today = p.now.date()
    return today - timedelta(days=int(p.rng.uniform(low, high) * 365.25))


# ---- plans --------------------------------------------------------------------------------


def plan_responder(p: TreatedPatient, *, withdraw: float = 0.35) -> Plan:
    p.enrol(birth_date=_adult_birth(p), facts={"cirrhosis": p.rng.random() < 0.15})
    p.disease()
    yield from p.screening()
    yield p.days(1, 10)
    yield from p.standard_induction()
    if p.rng.random() >= withdraw:
        p.settle("maintenance", variant="maintenance")
        yield from p.monitor()
        return
    yield from withdrawal(p, relapse=False)


def withdrawal(p: TreatedPatient, *, relapse: bool) -> Plan:
    """Two years of normal ALT/IgG, a biopsy, a stop request; off-treatment monitoring."""
    p.expect("maintenance")
    normal_since = p.normal_since()
    if normal_since is None:
        raise p.error("maintenance without a complete response")
    margin = p.rng.uniform(3, 20) if relapse else p.rng.uniform(5, 40)
    target = parse_duration("P2Y").after(normal_since) + timedelta(days=margin)
    while p.now + timedelta(days=33) < target:
        yield p.days(27, 33)
        p.panel()  # no skipped labs: the run of normal results is what counts
    yield p.until(target, 3)
    p.panel()
    active = not relapse and p.rng.random() < 0.15
    p.event("biopsy_resulted", histological_activity=active, ishak_grade=5 if active else 1)
    yield p.days(3, 14)
    if active:  # histological activity: the stop is refused and maintenance goes on
        if p.stop_request(may_refuse=True):
            raise p.error("stop allowed despite histological activity")
        p.settle("maintenance", variant="stop refused (biopsy activity)")
        yield from p.monitor()
        return
    if not p.stop_request(may_refuse=False):
        raise p.error("stop refused")
    p.expect("withdrawn")
    if not relapse:
        p.settle("withdrawn", variant="withdrawn")
        yield from p.monitor((85, 95), "ALT", "IgG")
        return
    yield p.days(20, 75)  # most relapses come within months of stopping
    relapse_alt = p.rng.uniform(90, 350)
    p.courses["ALT"] = Course(relapse_alt, relapse_alt, 0, p.now, floor_noise=0.03)
    p.courses["AST"] = Course(relapse_alt * 0.8, relapse_alt * 0.8, 0, p.now, floor_noise=0.03)
    p.panel("ALT", "AST", "IgG")
    p.expect("relapse")
    yield p.days(2, 10)
    p.disease(alt=(relapse_alt, relapse_alt * 1.01), igg=(17, 24))
    p.record.variant = "re-induced"
    yield from p.standard_induction(settle_on_start=("induction", "taper", "maintenance"))
    p.settle("maintenance")
    yield from p.monitor()


def plan_relapse_after_stop(p: TreatedPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p))
    p.disease()
    yield from p.screening()
    yield p.days(1, 5)
    yield from p.standard_induction()
    yield from withdrawal(p, relapse=True)


def plan_non_responder(p: TreatedPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p))
    p.disease(alt=(180, 700))
    yield from p.screening()
    yield p.days(1, 10)

    def falls_too_little() -> None:
        alt0 = p.last["ALT"]
        p.courses["ALT"] = Course(alt0, alt0 * p.rng.uniform(0.6, 0.85), 20, p.now, noise=0.03)

    started, _ = yield from p.prednisolone_then_azathioprine(falls_too_little)
    yield p.until(started + timedelta(weeks=4), 4)
    p.panel()
    p.expect("second_line.assessment")
    yield from p.second_line(response=0.6)
    yield from p.monitor()


def plan_insufficient(p: TreatedPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p))
    p.disease(igg=(24, 34))
    yield from p.screening()
    yield p.days(1, 10)
    # IgG never normal: no complete biochemical response
    started, _ = yield from p.prednisolone_then_azathioprine(lambda: p.respond(igg_floor=(18, 23)))
    yield p.until(started + timedelta(weeks=4), 3)
    p.panel()
    p.order("prednisolone", mg_per_day=10)
    while not p.aminotransferases_normal():
        yield p.days(12, 16)
        p.panel()
    p.order("prednisolone", mg_per_day=7.5)
    p.expect("taper.7_5mg")
    # Monthly labs, the last one well before the 6-month mark: the review sweep decides.
    six_months = parse_duration("P6M").after(started)
    while p.now + timedelta(days=45) < six_months:
        yield p.days(27, 33)
        p.panel()
    moved = yield Until(stage_in("second_line"), (six_months - p.now).days + 10)
    if not moved:
        raise p.error("the 6-month review sweep did not move the patient to second line")
    p.expect("second_line.assessment")
    yield from p.second_line(response=0.5)
    yield from p.monitor()


def plan_partial(p: TreatedPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p))
    p.disease(alt=(240, 600))
    yield from p.screening()
    yield p.days(1, 10)
    # ALT stays just above ULN
    started, _ = yield from p.prednisolone_then_azathioprine(lambda: p.respond(alt_floor=(46, 64)))
    yield p.until(started + timedelta(weeks=4), 3)
    p.panel()
    p.order("prednisolone", mg_per_day=10)
    p.expect("taper.10mg")
    while not in_family(p.state, ("second_line",)):
        if p.now > parse_duration("P8M").after(started):
            raise p.error("partial response was still accepted after 8 months")
        yield p.days(27, 33)
        p.panel()
    yield from p.second_line(response=0.5)
    yield from p.monitor()


def plan_intolerance(p: TreatedPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p))
    p.disease()
    yield from p.screening()
    yield p.days(1, 10)
    _, on_aza = yield from p.prednisolone_then_azathioprine(p.respond)
    yield p.days(7, 50)
    p.event("intolerance", drug="azathioprine" if on_aza else "prednisolone")
    p.expect("second_line.assessment")
    yield from p.second_line(response=0.8)
    yield from p.monitor()


def plan_acute_severe(p: TreatedPatient, *, responding: bool) -> Plan:
    p.enrol(birth_date=_adult_birth(p))
    p.disease(alt=(500, 1800), bili=(90, 380))
    yield from p.screening(urgent=True)
    if p.rng.random() < 0.5:
        p.event("acute_severe_presentation")
        p.expect("acute_severe")
        yield p.days(0, 0.5)
    yield from p.acute_severe_course(responding=responding)
    if responding:
        yield from after_acute_severe(p)
        return
    yield from p.transplant_course()


def after_acute_severe(p: TreatedPatient) -> Plan:
    """Responding: oral prednisolone, azathioprine, the taper."""
    p.expect("induction.prednisolone")
    started, _ = yield from p.prednisolone_then_azathioprine()
    yield from p.taper_to_maintenance(started)
    p.settle("maintenance", variant="steroid trial responded")
    yield from p.monitor()


def plan_pregnancy(p: TreatedPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p, 20, 40))
    p.disease()
    yield from p.screening()
    yield p.days(1, 10)
    _, on_aza = yield from p.prednisolone_then_azathioprine(p.respond)
    yield p.days(5, 25)
    p.event("pregnancy")
    conceived = p.now
    yield p.days(5, 30)
    p.panel()
    p.event("intolerance", drug="azathioprine" if on_aza else "prednisolone")
    p.expect("second_line.assessment")
    p.record.variant = "MMF refused"
    yield from p.second_line(response=0.7, pregnant=True)
    yield p.until(conceived + timedelta(days=270), 14)
    p.event("pregnancy_ended")
    yield from p.monitor()


def plan_decompensation(p: TreatedPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p, 35, 78), facts={"cirrhosis": True})
    if p.rng.random() < 0.5:  # severely inflamed at presentation: a steroid trial first
        p.disease(alt=(480, 1500), bili=(60, 250))
        yield from p.screening(urgent=True)
        p.event("decompensation", feature="ascites")
        p.expect("acute_severe")
        p.record.variant = "steroid trial"
        responding = p.rng.random() < 0.65
        yield from p.acute_severe_course(responding=responding)
        if responding:
            yield from after_acute_severe(p)
        else:
            yield from p.transplant_course()
        return
    p.disease(alt=(120, 350))
    p.record.variant = "decompensated on treatment"
    yield from p.screening()
    yield p.days(1, 10)
    yield from p.prednisolone_then_azathioprine(p.respond)
    yield p.days(20, 120)
    p.panel(may_skip=True)
    feature = p.rng.choice(("ascites", "hepatic_encephalopathy", "variceal_bleeding"))
    p.event("decompensation", feature=feature)
    p.expect("transplant_evaluation")
    yield from p.transplant_course()


def plan_budesonide(p: TreatedPatient) -> Plan:
    p.enrol(birth_date=_adult_birth(p), facts={"cirrhosis": False, "high_steroid_risk": True})
    p.disease(alt=(120, 400))
    yield from p.screening()
    yield p.days(1, 10)
    p.order("budesonide", mg_per_day=9)
    p.expect("induction.budesonide")
    started = p.now
    p.respond()
    yield p.until(started + timedelta(days=14), 3)  # IND-AZA-DELAY
    p.start_azathioprine()
    yield p.until(started + timedelta(weeks=4), 3)
    for _ in range(12):
        p.panel()
        if p.state == "maintenance":
            p.settle("maintenance", variant="budesonide")
            yield from p.monitor()
            return
        yield p.days(14, 30)
    raise p.error("budesonide responder never reached maintenance")


def plan_child(p: TreatedPatient) -> Plan:
    today = p.now.date()
    p.weight = round(p.rng.uniform(25, 60), 1)
    p.enrol(birth_date=today - timedelta(days=int(p.rng.uniform(6, 16.5) * 365.25)))
    p.disease()
    yield from p.screening()
    yield p.days(1, 10)
    if p.rng.random() < 0.1:  # paediatric treatment failure (5-15%)
        p.record.variant = "treatment failure"
        p.order("prednisolone", mg_per_day=min(60.0, round(2 * p.weight)))
        p.expect("induction.paediatric")
        started = p.now
        alt0 = p.last["ALT"]
        p.courses["ALT"] = Course(alt0, alt0 * p.rng.uniform(0.6, 0.85), 20, p.now, noise=0.03)
        yield p.until(started + timedelta(weeks=4), 4)
        p.panel()
        p.expect("second_line.assessment")
        yield from p.second_line(response=0.6)
        yield from p.monitor()
        return
    yield from p.standard_induction(child=True)
    p.settle("maintenance", variant="paediatric")
    yield from p.monitor()


def plan_cirrhosis_budesonide(p: TreatedPatient) -> Plan:
    p.enrol(
        birth_date=_adult_birth(p, 30, 75), facts={"cirrhosis": True, "high_steroid_risk": True}
    )
    p.disease()
    yield from p.screening()
    yield p.days(1, 10)
    if p.order("budesonide", mg_per_day=9, may_refuse=("SAFE-BUD-CIRRHOSIS",)) is not None:
        raise p.error("budesonide was not refused in cirrhosis")
    yield p.days(0, 2)
    yield from p.standard_induction()
    p.settle("maintenance", variant="prednisolone after refusal")
    yield from p.monitor()


PLANS: dict[str, Callable[[TreatedPatient], Plan]] = {
    "responder": plan_responder,
    "non_responder": plan_non_responder,
    "insufficient_response": plan_insufficient,
    "partial_response": plan_partial,
    "intolerance": plan_intolerance,
    "acute_severe_responding": lambda p: plan_acute_severe(p, responding=True),
    "acute_severe_failing": lambda p: plan_acute_severe(p, responding=False),
    "pregnancy": plan_pregnancy,
    "decompensation": plan_decompensation,
    "relapse_after_stop": plan_relapse_after_stop,
    "budesonide": plan_budesonide,
    "child": plan_child,
    "cirrhosis_budesonide": plan_cirrhosis_budesonide,
}
