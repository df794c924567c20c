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
from tests.api.conftest import app, callers, client, clock, uow_factory  # noqa: F401
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
