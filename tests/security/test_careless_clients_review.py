# ruff: noqa: F811  (the lab feed's and the API's fixtures are imported by name)
"""A careless client of the new surfaces: each gets a clear refusal, nothing partial is written,
and nothing hangs.

- HL7 v2 over MLLP: an OBX-5 with repetitions (two values for one result), a message with more
  OBX than a lab panel ever has, a peer trickling a frame a byte at a time, more connections
  than a lab system opens.
- CDS Hooks: a request with 100,000 drafts, absurd numbers, deep JSON, wrong types.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from lab_feed.mllp import END_BLOCK, START_BLOCK, MllpFrames, frame
from lab_feed.oru import MAX_OBSERVATIONS
from tests.api.conftest import (  # noqa: F401
    ENROLMENT,
    app,
    callers,
    client,
    clock,
    uow_factory,
)
from tests.api.test_cds_hooks import _audit
from tests.lab_feed.conftest import (  # noqa: F401
    database_url,
    enrol_north,
    feed,
    labs_of,
    migrated_sqlite,
    start_listener,
)
from tests.lab_feed.oru_messages import ALT, Obx, oru, read_ack

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # the manual clock's start
TAKEN = NOW - timedelta(hours=3)


@pytest.fixture
def patient(enrol_north) -> str:
    return enrol_north("NR-100")["patient_id"]


def test_an_obx_5_with_two_values_refuses_the_message(feed, patient, labs_of):
    """`420~500` is two results in one OBX: which one is ALT? None is recorded."""
    message = oru("NR-100", (TAKEN, [Obx(ALT, "420~500", "U/L"), Obx(ALT, "30", "U/L")]))

    ack = read_ack(feed.answer(message))

    assert ack.code == "AR" and "OBX-5 repeats" in ack.text, ack
    assert labs_of(patient) == []


def test_a_message_with_more_obx_than_any_panel_is_refused_whole(feed, patient, labs_of):
    observations = [Obx(ALT, "42", "U/L")] * (MAX_OBSERVATIONS + 1)

    ack = read_ack(feed.answer(oru("NR-100", (TAKEN, observations))))

    assert ack.code == "AR" and f"more than {MAX_OBSERVATIONS} OBX" in ack.text, ack
    assert labs_of(patient) == []


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """The peer closed the connection (a read gives b'' or a reset) within `seconds`."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_peer_trickling_a_frame_is_closed_although_never_idle(start_listener):
    port = start_listener(idle_seconds=30, frame_seconds=1)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(START_BLOCK + b"MSH|")
        began = time.monotonic()
        closed = False
        while not closed and time.monotonic() - began < 5:
            try:
                sock.sendall(b"^")  # a byte every 0.2 s: never idle
            except OSError:
                closed = True
                break
            sock.settimeout(0.2)
            try:
                closed = sock.recv(1024) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True

        assert closed, "a frame trickled in for 5 s kept its connection"


def test_connections_beyond_the_limit_are_closed_at_once(start_listener):
    port = start_listener(max_connections=1)
    with socket.create_connection(("127.0.0.1", port)) as first:
        time.sleep(0.2)  # the first is accepted and held
        with socket.create_connection(("127.0.0.1", port)) as second:
            assert _closed_within(second, 5)
        assert not _closed_within(first, 0.3)


def test_a_frame_fed_a_byte_at_a_time_is_cut_whole():
    message = b"MSH|^~\\&|LIS|NORTHLAB" + b"|x" * 5000
    frames = MllpFrames(1_000_000)
    found: list = []
    for byte in frame(message) + frame(b"MSH|2"):
        found += frames.feed(bytes([byte]))
    assert found == [message, b"MSH|2"] and not frames.pending
    assert frames.feed(START_BLOCK + b"MSH") == [] and frames.pending
    assert frames.feed(b"|3" + END_BLOCK[:1]) == [] and frames.feed(END_BLOCK[1:]) == [b"MSH|3"]


SIGN = "/cds-services/aih-order-sign"
PREDNISOLONE = {
    "resourceType": "MedicationRequest",
    "medicationCodeableConcept": {"text": "prednisolone"},
    "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 30, "unit": "mg"}}]}],
}


def _sign(patient_id: str, drafts: list) -> dict:
    return {
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "patientId": patient_id,
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts]},
        },
    }


def _with_dose(value, **timing) -> dict:
    instruction = {"doseAndRate": [{"doseQuantity": {"value": value, "unit": "mg"}}]}
    if timing:
        instruction["timing"] = {"repeat": timing}
    return {**PREDNISOLONE, "dosageInstruction": [instruction]}


@pytest.fixture
def ehr_patient(client, callers, uow_factory) -> tuple[dict, str]:
    callers.add(uow_factory, "ehr", "ehr", "north")
    enrolled = client.post("/patients", json=ENROLMENT, headers=callers["clinician"])
    assert enrolled.status_code == 201, enrolled.text
    return callers["ehr"], enrolled.json()["patient_id"]


@pytest.mark.parametrize(
    ("drafts", "reason"),
    [
        ([PREDNISOLONE] * 101, "at most 100"),
        ([_with_dose(1e308)], "not a plausible daily dose"),
        ([_with_dose(-0.0)], "must be above 0"),
        ([_with_dose(10, frequency=1e300)], "not a plausible daily dose"),
        ([_with_dose(10, period=1e-300)], "not a plausible daily dose"),
        ([_with_dose("10")], "finite number"),
        ([_with_dose(10, frequency=2, periodUnit="fortnight")], "periodUnit"),
    ],
    ids=["101 drafts", "1e308", "-0", "frequency 1e300", "period 1e-300", "text", "unit"],
)
def test_absurd_cds_requests_are_a_400_with_the_reason_and_no_review(
    client, ehr_patient, uow_factory, drafts, reason
):
    headers, patient_id = ehr_patient

    answer = client.post(SIGN, json=_sign(patient_id, drafts), headers=headers)

    assert answer.status_code == 400 and reason in answer.json()["detail"], answer.text
    assert _audit(uow_factory, "order_reviewed") == []


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (SIGN, b'{"hook": "order-sign", "hook": "order-select", "context": {}}'),
        ("/patients", b'{"site": "north", "site": "south"}'),
    ],
)
def test_a_json_object_naming_a_key_twice_is_refused_at_the_edge(client, ehr_patient, path, raw):
    """Parsers disagree on which of two values wins; neither is taken."""
    headers, _ = ehr_patient

    answer = client.post(path, content=raw, headers={**headers, "content-type": "application/json"})

    assert answer.status_code == 400, answer.text
    assert "names the key" in answer.json()["detail"] and "twice" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"state": "inductoin"}, "is not one of the pathway's"),
        ({"birth_date": "9999-12-31"}, "in the future"),
        ({"birth_date": "0001-01-01"}, "on or after"),
        ({"name": "\u202eAda"}, "one line"),
    ],
    ids=["misspelt state", "year 9999", "year 0001", "bidi override"],
)
def test_a_search_that_cannot_match_is_refused_not_answered_with_an_empty_page(
    client, callers, query, reason
):
    answer = client.get("/patients", params=query, headers=callers["clinician"])

    assert answer.status_code == 422 and reason in answer.json()["detail"], answer.text
