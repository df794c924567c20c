"""schemathesis against the app's live OpenAPI document: no server errors, and every response
(status, content type, headers, body) matches what the document declares.

Bounded for CI: a few examples per operation. Patient routes are pointed at a real enrolled
patient (most random ids would only ever meet the 404), admin routes get the admin token and
everything else a clinician's.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.api.conftest import ENROLMENT

MAX_EXAMPLES = 30
# A schema-valid request may still be refused with a 422 by the pathway (an unknown lab code, a
# unit that does not convert, a date in the future): the document cannot express the clinical
# content, so "valid data must be accepted" is not checked. Every other check runs.
SEMANTIC_REFUSALS = [schemathesis.checks.positive_data_acceptance]


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture
def seeded(client, callers):
    """An enrolled, screened patient at the clinician's site."""
    enrolled = client.post(
        "/patients", json={**ENROLMENT, "facts": {"cirrhosis": True}}, headers=callers["clinician"]
    ).json()
    for code, value, unit in (("ALT", 420, "U/L"), ("TPMT", 31, "U/mL")):
        recorded = client.post(
            f"/patients/{enrolled['patient_id']}/labs",
            json={"code": code, "value": value, "unit": unit},
            headers=callers["clinician"],
        )
        assert recorded.status_code == 200, recorded.text
    return enrolled["patient_id"]


def operations(api_schema):
    return [result.ok() for result in api_schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_api_conforms_to_its_openapi_document(mode, api_schema, callers, seeded):
    """Every operation, valid (positive) or invalid (negative) requests: no 5xx, and answers
    as documented."""

    answered: Counter[tuple[str, int]] = Counter()

    def exercise(case):
        admin_route = case.path.startswith("/users") and case.path != "/users/me"
        headers = callers["admin"] if admin_route else callers["clinician"]
        response = case.call_and_validate(headers=headers, excluded_checks=SEMANTIC_REFUSALS)
        answered[case.operation.label, response.status_code] += 1

    for operation in operations(api_schema):
        fixed = {}
        if "{patient_id}" in operation.path:
            fixed["patient_id"] = seeded
        if "{user_id}" in operation.path:
            fixed["user_id"] = callers.users["clinician-anywhere"]["id"]
        strategy = operation.as_strategy(mode, path_parameters=fixed or None)
        test = settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(case=strategy)(exercise))
        try:
            test()
        except Exception as failure:
            raise AssertionError(f"{operation.label} ({mode}): {failure}") from failure
    print(f"\nnative API fuzz ({mode}): {sum(answered.values())} cases")
    assert not [key for key in answered if key[1] >= 500]
    if mode == GenerationMode.POSITIVE:  # negative cases may carry a broken Authorization
        assert 401 not in {status for _, status in answered}, "every request had a valid token"
        succeeded = {label for label, status in answered if 200 <= status < 300}
        assert {"GET /patients/{patient_id}", "GET /patients", "GET /pathways"} <= succeeded
