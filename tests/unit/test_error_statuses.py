"""One table of error statuses: the native API, the pages and the FHIR facade answer every
domain error with the same HTTP status (problem+json or OperationOutcome)."""

from __future__ import annotations

import pytest

from api.errors import STATUS, domain_problem
from api.fhir.outcome import outcome_for
from engine.domain.errors import DomainError, HardBlock


def _instance(cls: type[DomainError]) -> DomainError:
    if cls is HardBlock:
        return HardBlock("SAFE-X", ["SAFE-X"], "refused", ["S1"])
    return cls("why")


@pytest.mark.parametrize("cls", [row[0] for row in STATUS], ids=lambda cls: cls.__name__)
def test_every_domain_error_has_one_status_on_the_api_and_in_fhir(cls):
    error = _instance(cls)

    native = domain_problem(error)
    fhir_status, outcome, _ = outcome_for(error)

    assert native.status_code == fhir_status
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == next(c for k, _, _, c in STATUS if k is cls)
