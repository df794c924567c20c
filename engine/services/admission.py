"""Admission: may this caller take this action on the patient the use case loads, at the
version the caller saw?

An entry point hands the unit of work an `Admission`; the repository applies it to the patient
it loads for the use case, in the use case's own transaction, so a request costs one
transaction: no separate look-up of the patient's site and version before the work (which
could also be stale by the time the work runs). The answer is the access policy's (one policy
for every surface): a patient of another site is unknown, exactly like an unknown id.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from engine.domain.errors import StaleVersion, UnknownPatient
from engine.domain.model import Patient
from engine.services import access_policy
from engine.services.access_policy import Principal, Resource


@dataclass(frozen=True)
class Admission:
    """The caller, the policy action of the request and the patient version it was based on
    (None: any)."""

    principal: Principal
    action: str
    expected_version: int | None = None

    def admit(self, patient: Patient) -> None:
        """Return if the caller may go on; UnknownPatient, Forbidden or StaleVersion if not."""
        self.admit_at(patient.id, patient.site)
        if self.expected_version is not None and patient.version != self.expected_version:
            raise StaleVersion(
                f"the patient is at version {patient.version}, not {self.expected_version}; "
                "reload and retry"
            )

    def admit_at(self, patient_id: str, site: str | None) -> None:
        """The policy alone, on a patient at `site` (None: no such patient): a replayed answer
        is given again only to a caller who may still take the action on that patient (the
        version is not checked: the replay answers what was already done)."""
        missing = partial(UnknownPatient, f"no patient with id {patient_id!r}")
        if site is None:
            raise missing()
        access_policy.enforce(self.principal, self.action, Resource(site), missing=missing)
