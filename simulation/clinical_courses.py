"""The pieces of care many plans share, as sub-plans (`yield from`): screening, induction,
azathioprine, the prednisolone taper, second line, acute severe and transplant courses,
monitoring. Each records its inputs through `SimPatient` and checks where the engine put the
patient."""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import datetime, timedelta
from typing import Any

from engine.domain.durations import parse_duration
from simulation.lab_courses import ULN, Course, Until, stage_in
from simulation.patient import Plan, SimPatient


class TreatedPatient(SimPatient):
    """A synthetic patient with the shared courses of AIH care."""

    def tpmt_value(self) -> float:
        roll, deficient = self.rng.random(), self.sim.tpmt_deficient
        if roll < deficient:
            return round(self.rng.uniform(2, 14), 1)  # deficient: azathioprine refused
        if roll < deficient + 0.1:
            return round(self.rng.uniform(17.5, 23.5), 1)  # intermediate: alert
        return round(self.rng.uniform(25, 42), 1)

    def disease(
        self,
        *,
        alt: tuple[float, float] = (150, 600),
        igg: tuple[float, float] = (19, 34),
        bili: tuple[float, float] = (8, 35),
    ) -> None:
        """Untreated baseline courses (flat, noisy)."""
        rng, now = self.rng, self.now
        alt0 = rng.uniform(*alt)
        self.courses = {
            "ALT": Course(alt0, alt0, 0, now, noise=0.0, floor_noise=0.05),
            "AST": Course(alt0 * 0.8, alt0 * 0.8, 0, now, noise=0.0, floor_noise=0.05),
            "IgG": Course(rng.uniform(*igg), 0, 0, now, noise=0.0, floor_noise=0.04),
            "BILI": Course(rng.uniform(*bili), 0, 0, now, noise=0.0, floor_noise=0.05),
            "INR": Course(rng.uniform(1.0, 1.6), 0, 0, now, noise=0.0, floor_noise=0.03),
        }
        for course in self.courses.values():
            if not course.floor:
                course.floor = course.start

    def respond(
        self,
        *,
        alt_floor: tuple[float, float] = (14, 32),
        igg_floor: tuple[float, float] = (8, 14),
        tau: tuple[float, float] = (7, 12),
        igg_tau: tuple[float, float] = (18, 30),
        bili_floor: tuple[float, float] = (6, 17),
    ) -> None:
        """From now on, labs fall towards the given floors (treatment works as far as that)."""
        rng, now = self.rng, self.now
        alt_now, igg_now = self.last.get("ALT") or self.measure("ALT"), self.measure("IgG")
        t = rng.uniform(*tau)
        floor = rng.uniform(*alt_floor)
        self.courses["ALT"] = Course(alt_now, floor, t, now)
        self.courses["AST"] = Course(alt_now * 0.8, floor * rng.uniform(0.8, 1.1), t, now)
        self.courses["IgG"] = Course(igg_now, rng.uniform(*igg_floor), rng.uniform(*igg_tau), now)
        bili_now = self.measure("BILI")
        self.courses["BILI"] = Course(bili_now, min(bili_now, rng.uniform(*bili_floor)), 10, now)

    def screening(self, *, tpmt: float | None = None, urgent: bool = False) -> Plan:
        """TPMT, hepatitis B (and A) serology, baseline ALT/AST/IgG/bilirubin/INR."""
        yield self.days(0.05, 0.5 if urgent else 2)
        self.panel("ALT", "AST", "IgG", "BILI", "INR")
        yield self.days(0.1, 1 if urgent else 4)
        anti_hbc = "positive" if self.rng.random() < 0.06 else "negative"
        self.lab(
            "HBSAG",
            "positive" if anti_hbc == "positive" and self.rng.random() < 0.2 else "negative",
        )
        self.lab("ANTI_HBC", anti_hbc)
        self.lab("ANTI_HBS", "positive" if self.rng.random() < 0.45 else "negative")
        if self.rng.random() < 0.5:
            self.lab("ANTI_HAV", "positive" if self.rng.random() < 0.5 else "negative")
        yield self.days(0.1, 1 if urgent else 5)
        self.tpmt = self.tpmt_value() if tpmt is None else tpmt
        self.record.tpmt = self.tpmt
        self.lab("TPMT", self.tpmt)

    def start_azathioprine(self) -> bool:
        """AZA 1-2 mg/kg/day; a TPMT-deficient patient is refused (SCR-TPMT)."""
        dose = 1.0 if self.tpmt < 24 else round(self.rng.choice((1.5, 1.5, 2.0)), 1)
        return self.order("azathioprine", mg_per_kg_day=dose, may_refuse=("SCR-TPMT",)) is not None

    def aminotransferases_normal(self) -> bool:
        return self.last.get("ALT", 1e9) <= ULN["ALT"] and self.last.get("AST", 1e9) <= ULN["AST"]

    def complete_response(self) -> bool:
        return self.last.get("ALT", 1e9) <= ULN["ALT"] and self.last.get("IgG", 1e9) <= ULN["IgG"]

    def taper_to_maintenance(self, started: datetime, *, child: bool = False) -> Plan:
        """10 mg at 4 weeks (2 for a child), 7.5 mg once ALT/AST are normal, 5 mg after 3 months
        at 7.5 mg, maintenance on the next complete response."""
        yield self.until(started + timedelta(weeks=2 if child else 4), 3)
        self.panel()
        self.order("prednisolone", mg_per_day=10)
        self.expect("taper.10mg")
        for _ in range(24):
            yield self.days(12, 16)
            self.panel()
            if self.aminotransferases_normal():
                break
        else:
            raise self.error("aminotransferases never normalised on the 10 mg step")
        yield self.days(0, 3)
        self.order("prednisolone", mg_per_day=7.5)
        self.expect("taper.7_5mg")
        entered = self.now
        for _ in range(3):
            yield self.days(27, 33)
            self.panel(may_skip=True)
        yield self.until(parse_duration("P3M").after(entered), 6)
        self.panel()
        self.order("prednisolone", mg_per_day=5)
        if self.state == "maintenance":  # recent results already show complete response
            return
        self.expect("taper.5mg")
        for _ in range(6):
            yield self.days(14, 30)
            self.panel()
            if self.state == "maintenance":
                return
        raise self.error("no complete response on 5 mg")

    def standard_induction(
        self, *, child: bool = False, settle_on_start: tuple[str, ...] = ()
    ) -> Plan:
        """Prednisolone (30 mg/day, or 2 mg/kg for a child), azathioprine at day 14, taper."""
        if child:
            self.order("prednisolone", mg_per_day=min(60.0, round(2 * self.weight)))
            self.expect("induction.paediatric")
        else:
            self.order("prednisolone", mg_per_day=30)
            self.expect("induction.prednisolone")
        if settle_on_start:
            self.settle(*settle_on_start)
        started = self.now
        self.respond()
        yield self.until(started + timedelta(days=14), 2)
        self.panel(may_skip=True)
        self.start_azathioprine()
        yield from self.taper_to_maintenance(started, child=child)

    def prednisolone_then_azathioprine(
        self, course: Callable[[], None] | None = None
    ) -> Generator[Any, Any, tuple[datetime, bool]]:
        """Prednisolone 30 mg/day now, labs and azathioprine at day 14 (IND-STD, IND-AZA-DELAY).

        `course` sets the lab trajectory once treatment starts. Returns the treatment start
        and whether azathioprine was started.
        """
        self.order("prednisolone", mg_per_day=30)
        started = self.now
        if course is not None:
            course()
        yield self.until(started + timedelta(days=14), 2)
        self.panel()
        return started, self.start_azathioprine()

    def monitor(self, every_days: tuple[float, float] = (27, 33), *codes: str) -> Plan:
        """Monthly labs (or as given) for as long as the simulation runs."""
        while True:
            yield self.days(*every_days)
            self.panel(*codes, may_skip=True)

    def second_line(self, *, response: float, pregnant: bool = False) -> Plan:
        """Choose MMF (tacrolimus when pregnant or after MMF fails); maybe reach maintenance."""
        self.expect("second_line.assessment")
        yield self.days(2, 10)
        if pregnant:
            view = self.order(
                "mycophenolate_mofetil", mg_per_day=1000, may_refuse=("SAFE-MMF-PREG",)
            )
            if view is not None:
                raise self.error("MMF was not refused in pregnancy")
            yield self.days(0, 2)
            self.order("tacrolimus", mg_per_kg_day=0.075)
            self.expect("second_line.tacrolimus")
        else:
            self.order("mycophenolate_mofetil", mg_per_day=1000)
            self.expect("second_line.mmf")
        responds = self.rng.random() < response
        if responds:
            self.respond(tau=(12, 25), igg_tau=(20, 40))
        for step in range(8):
            yield self.days(27, 33)
            self.panel()
            if self.state == "maintenance":
                self.settle("maintenance", variant="second-line response")
                return
            if step == 3 and not responds and self.state == "second_line.mmf":
                self.order("tacrolimus", mg_per_kg_day=0.075)
                self.expect("second_line.tacrolimus")
                responds = self.rng.random() < 0.5
                if responds:
                    self.respond(tau=(12, 25), igg_tau=(20, 40))
        if responds:
            raise self.error("second-line responder never reached maintenance")
        self.settle("second_line", variant="refractory")

    def acute_severe_course(self, *, responding: bool) -> Plan:
        """IV methylprednisolone; bilirubin at days 3, 7, 12; the sweep judges it at day 14."""
        self.order("methylprednisolone", mg_per_kg_day=1, route="iv")
        self.expect("acute_severe")
        entered = self.now
        if responding:
            self.respond(tau=(6, 10), bili_floor=(8, 18))
        else:
            bili = self.measure("BILI")
            self.courses["BILI"] = Course(bili, bili * self.rng.uniform(1.15, 1.5), 8, self.now)
        necrosis = not responding and self.rng.random() < 0.25
        for day in (3, 7, 12):
            yield self.until(entered + timedelta(days=day), 1)
            self.panel("ALT", "BILI", "INR")
            if necrosis and day == 7:
                self.event("biopsy_resulted", histological_activity=True, multiacinar_necrosis=True)
                self.expect("transplant_evaluation")
                self.record.variant = "multiacinar necrosis"
                return
        moved = yield Until(stage_in("induction", "transplant_evaluation"), 10)
        if not moved:
            raise self.error("the acute severe review did not move the patient by day 24")
        self.expect("induction.prednisolone" if responding else "transplant_evaluation")

    def transplant_course(self) -> Plan:
        """Evaluation: MELD/Child-Pugh scores, then transplanted, declined or still waiting."""
        yield self.days(1, 7)
        self.event(
            "severity_scores", meld=self.rng.randint(16, 32), child_pugh=self.rng.randint(9, 13)
        )
        roll = self.rng.random()
        if roll < 0.6:
            yield self.days(14, 120)
            self.event("transplant_performed")
            self.settle("transplanted", variant=self.record.variant or "transplanted")
            return
        if roll < 0.75:
            yield self.days(14, 60)
            self.event("transplant_declined")
            self.expect("second_line.assessment")
            yield self.days(2, 10)
            self.order("tacrolimus", mg_per_kg_day=0.075)
            self.settle("second_line", "maintenance", variant="transplant declined")
            yield from self.monitor()
            return
        self.settle("transplant_evaluation", "transplanted", variant="on the waiting list")
        yield from self.monitor((55, 65), "ALT", "BILI", "INR")
