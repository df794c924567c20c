"""CDS Hooks order-sign: latency over HTTP with a prefetch, beside the service call alone.

On a temporary SQLite file, patients are enrolled and screened through the service layer (a
third with cirrhosis), and one `ehr` user gets a token. Then, rounds interleaved so a slow
spell of the shared machine hits both alike:

1. service: `order_review.review_drafts` in-process on the draft already mapped (resolving the
   patient and the policy, loading the patient, the pathway's review, the audit row);
2. HTTP: `POST /cds-services/aih-order-sign` to the real app (`api.main.create_app` served by
   uvicorn in its own process) with a prefetched Patient and active
   MedicationRequests, on one keep-alive connection: authentication, the edge's body checks,
   mapping the MedicationRequest, the same service call, the cards.

Two drafts are timed: budesonide 3 mg three times a day for a cirrhotic patient (a critical
card whose prednisolone alternative is itself reviewed, and a warning card) and prednisolone
30 mg/day for a screened patient (no card; its order is rehearsed for the alerts it would
raise, then rolled back). p50 and p95 of each, and HTTP / service.

Run: `python -m bench cds [--quick]` or `python -m bench.cds [--quick]`.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from bench.api.processes import Server
from bench.api.seeding import NOW
from bench.common import (
    Options,
    Table,
    banner,
    fmt_ns,
    fmt_ratio,
    footer,
    note,
    percentile,
    run_module,
    section,
)
from engine.adapters.database import make_engine, session_factory
from engine.adapters.migrate import upgrade
from engine.clock import ManualClock
from engine.services import access, order_review
from engine.services import patients as patient_service
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
DRAFTS = {
    "budesonide 9 mg/day, cirrhosis": ("19831", "Budesonide 3 MG Oral Capsule", 3, 3, True),
    "prednisolone 30 mg/day": ("8638", "Prednisolone 5 MG Oral Tablet", 10, 3, False),
}


def main(options: Options) -> int:
    run = banner("bench cds: CDS Hooks order-sign over HTTP vs the service call", options)
    patients = options.pick(60, 12)
    samples = options.pick(300, 40)
    with tempfile.TemporaryDirectory(prefix="aihp-bench-cds-") as folder:
        url = f"sqlite:///{Path(folder) / 'cds.db'}"
        upgrade(url)
        engine = make_engine(url)
        uow = partial(SqlAlchemyUnitOfWork, session_factory(engine), ManualClock(NOW))
        section(f"seeding {patients} patients (not timed)")
        cohort = _seed(uow, patients)
        user = access.create_user(uow(), "bench", name="ehr-north", role="ehr", site="north")
        token = access.issue_token(uow(), "bench", user["id"])["token"]
        principal = access.authenticate(uow(), token)
        server = Server(url, token)
        try:
            table = Table(
                "draft",
                "service p50",
                "service p95",
                "HTTP p50",
                "HTTP p95",
                "HTTP/service",
                title=f"order-sign, {samples} calls each (rounds interleaved)",
            )
            for label, spec in DRAFTS.items():
                ids = cohort["cirrhotic" if spec[4] else "screened"]
                service, http = _measure(uow, principal, server, ids, spec, samples)
                table.row(
                    label,
                    fmt_ns(percentile(service, 50)),
                    fmt_ns(percentile(service, 95)),
                    fmt_ns(percentile(http, 50)),
                    fmt_ns(percentile(http, 95)),
                    fmt_ratio(percentile(http, 50), percentile(service, 50)),
                )
            section("results")
            table.print()
            note("service: review_drafts in this process (policy, patient load, review, audit).")
            note("HTTP: + token check, body checks, MedicationRequest mapping, cards, JSON, and a")
            note("separate uvicorn process on the same 2 cores; each call writes its audit row.")
        finally:
            server.close()
            engine.dispose()
    footer(run)
    return 0


def _seed(uow: Callable[[], SqlAlchemyUnitOfWork], count: int) -> dict[str, list[str]]:
    cohort: dict[str, list[str]] = {"cirrhotic": [], "screened": []}
    for index in range(count):
        cirrhotic = index % 3 == 0
        status = patient_service.enrol_patient(
            uow(),
            "bench",
            site="north",
            clinician="dr-a",
            birth_date=date(1970 + index % 30, 1 + index % 12, 1),
            sex="F" if index % 2 else "M",
            weight_kg=55 + index % 40,
            facts={"cirrhosis": cirrhotic},
        )
        baseline = (("ALT", 420, "U/L"), ("AST", 300, "U/L"), ("IgG", 25, "g/L"))
        for code, value, unit in (*baseline, ("BILI", 30, "umol/L"), ("TPMT", 31, "U/mL")):
            patient_service.record_lab_result(
                uow(), "bench", status["patient_id"], code=code, value=value, unit=unit
            )
        cohort["cirrhotic" if cirrhotic else "screened"].append(status["patient_id"])
    return cohort


def _measure(
    uow: Callable[[], SqlAlchemyUnitOfWork],
    principal: Any,
    server: Server,
    ids: list[str],
    spec: tuple[str, str, float, int, bool],
    samples: int,
) -> tuple[list[float], list[float]]:
    rxnorm, text, dose, per_day, _ = spec
    draft = order_review.Draft("MedicationRequest/d1", text, (("rxnorm", rxnorm),), dose * per_day)
    pick = random.Random(7)
    service: list[float] = []
    http: list[float] = []
    for _ in range(samples):
        patient_id = pick.choice(ids)
        started = time.perf_counter_ns()
        order_review.review_drafts(
            uow(),
            principal,
            patient_id=patient_id,
            drafts=[draft],
            service="aih-order-sign",
            hook="order-sign",
            hook_instance="bench",
        )
        service.append(time.perf_counter_ns() - started)
        body = _request(patient_id, rxnorm, text, dose, per_day)
        started = time.perf_counter_ns()
        response = server.client.post("/cds-services/aih-order-sign", json=body)
        http.append(time.perf_counter_ns() - started)
        if response.status_code != 200:
            raise RuntimeError(f"order-sign: {response.status_code} {response.text[:300]}")
    return sorted(service), sorted(http)


def _request(patient_id: str, rxnorm: str, text: str, dose: float, per_day: int) -> dict[str, Any]:
    """An order-sign request with the prefetch the discovery document asks for."""
    draft = {
        "resourceType": "MedicationRequest",
        "id": "d1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxnorm}], "text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": dose,
                            "unit": "mg",
                            "system": "http://unitsofmeasure.org",
                            "code": "mg",
                        }
                    }
                ],
            }
        ],
    }
    active = {**draft, "id": "a1", "status": "active"}
    return {
        "hook": "order-sign",
        "hookInstance": "0f8d5f0e-bench",
        "context": {
            "userId": "Practitioner/1",
            "patientId": patient_id,
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}]},
        },
        "prefetch": {
            "patient": {
                "resourceType": "Patient",
                "id": patient_id,
                "identifier": [{"value": "MRN-1"}],
            },
            "medications": {"resourceType": "Bundle", "entry": [{"resource": active}]},
        },
    }


if __name__ == "__main__":
    run_module(main, "bench.cds")
