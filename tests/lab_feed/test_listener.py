"""The MLLP listener over a real TCP socket: framing (a message split across reads, several in
one write, bytes between frames), size and idle limits, one answer per message, in order, and a
message sent again recorded once."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

from lab_feed.mllp import END_BLOCK, START_BLOCK, MllpFrames, Oversize, frame
from lab_feed.sender import MllpConnection
from tests.lab_feed.oru_messages import ALT, AST, Obx, oru, read_ack


def _raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=15)


def _acks(sock: socket.socket, expected: int) -> list:
    frames, found = MllpFrames(1_000_000), []
    while len(found) < expected:
        data = sock.recv(65_536)
        assert data, f"connection closed after {len(found)} of {expected} answers"
        found += frames.feed(data)
    return [read_ack(f) for f in found]


def test_a_message_split_across_reads_is_answered_once_whole(port, enrol_north, labs_of, clock):
    patient = enrol_north("NR-1")["patient_id"]
    message = frame(oru("NR-1", (clock.now(), [Obx(ALT, "420", "U/L"), Obx(AST, "300", "U/L")])))

    with _raw(port) as sock:
        for cut in (1, 7, 60, len(message) - 1):  # inside the start block's neighbourhood, MSH,
            sock.sendall(message[:cut])  # an OBX, and between 0x1C and 0x0D
            message = message[cut:]
            time.sleep(0.05)
        sock.sendall(message)
        (ack,) = _acks(sock, 1)

    assert ack.code == "AA"
    assert [(lab["code"], lab["value"]) for lab in labs_of(patient)] == [("ALT", 420), ("AST", 300)]


def test_two_messages_in_one_write_get_two_answers_in_order(port, enrol_north, labs_of, clock):
    patient = enrol_north("NR-2")["patient_id"]
    first = oru("NR-2", (clock.now() - timedelta(days=1), [Obx(ALT, "420", "U/L")]))
    second = oru("NR-2", (clock.now(), [Obx(ALT, "380", "U/L")]))

    with _raw(port) as sock:
        sock.sendall(frame(first) + frame(second))
        acks = _acks(sock, 2)

    assert [(a.code, a.control_id) for a in acks] == [
        ("AA", read_ack_id(first)),
        ("AA", read_ack_id(second)),
    ]
    assert [lab["value"] for lab in labs_of(patient)] == [420, 380]


def read_ack_id(message: bytes) -> str:
    return message.split(b"\r")[0].split(b"|")[9].decode()


def test_bytes_outside_frames_are_dropped_and_the_frames_still_answered(
    port, enrol_north, labs_of, clock
):
    patient = enrol_north("NR-3")["patient_id"]
    message = oru("NR-3", (clock.now(), [Obx(ALT, "420", "U/L")]))

    with _raw(port) as sock:
        sock.sendall(b"\x00\xffGET / HTTP/1.1\r\n\r\n" + frame(message) + b"\x1c\r\n garbage")
        (ack,) = _acks(sock, 1)
        sock.sendall(START_BLOCK + b"\xff\xfe not HL7 at all" + END_BLOCK)
        (garbage,) = _acks(sock, 1)

    assert ack.code == "AA" and len(labs_of(patient)) == 1
    assert garbage.code == "AR"
    assert "must begin with an MSH segment" in garbage.text


def test_an_oversize_message_is_refused_and_the_connection_goes_on(
    start_listener, enrol_north, labs_of, clock
):
    port = start_listener(max_message_bytes=4_000)
    patient = enrol_north("NR-4")["patient_id"]
    huge = oru("NR-4", (clock.now(), [Obx(ALT, "420", "U/L")]), trailer="NTE|2||" + "x" * 20_000)
    small = oru("NR-4", (clock.now(), [Obx(ALT, "410", "U/L")]))

    with _raw(port) as sock:
        sock.sendall(frame(huge)[:9_000])
        time.sleep(0.05)
        sock.sendall(frame(huge)[9_000:] + frame(small))
        refused, accepted = _acks(sock, 2)

    assert (refused.code, refused.control_id) == ("AR", read_ack_id(huge))
    assert "larger than 4000 bytes" in refused.text
    assert accepted.code == "AA"
    assert [lab["value"] for lab in labs_of(patient)] == [410]


def test_an_idle_connection_is_closed(start_listener):
    port = start_listener(idle_seconds=0.2)

    with _raw(port) as sock:
        started = time.monotonic()
        closed = sock.recv(10)

    assert closed == b""
    assert time.monotonic() - started < 5


def test_a_resent_message_is_acknowledged_again_and_recorded_once(
    connect, enrol_north, labs_of, clock
):
    patient = enrol_north("NR-5")["patient_id"]
    message = oru("NR-5", (clock.now(), [Obx(ALT, "420", "U/L")]), control_id="LAB-77")
    resent_later = message.replace(b"20260105090000+0000", b"20260105091500+0000", 1)  # MSH-7

    first = read_ack(connect().send(message))
    again = read_ack(connect().send(resent_later))
    changed = read_ack(connect().send(message.replace(b"||420|", b"||421|")))

    assert (first.code, again.code) == ("AA", "AA")
    assert "already recorded" in again.text
    assert changed.code == "AR"
    assert changed.errors[0][1] == "205" and "different message" in changed.text
    assert len(labs_of(patient)) == 1


def test_the_same_message_on_two_connections_at_once_is_recorded_once(
    port, enrol_north, labs_of, clock
):
    patient = enrol_north("NR-6")["patient_id"]
    message = oru("NR-6", (clock.now(), [Obx(ALT, "420", "U/L")]), control_id="LAB-RACE")
    answers: list[str] = []

    def send() -> None:
        with MllpConnection("127.0.0.1", port) as connection:
            answers.append(read_ack(connection.send(message)).code)

    senders = [threading.Thread(target=send) for _ in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)

    assert answers == ["AA"] * 4
    assert len(labs_of(patient)) == 1


def test_frames_are_cut_from_any_reads():
    frames = MllpFrames(max_bytes=10)
    pieces = [b"xx\x0bMSH|a", b"\x1c", b"\rjunk\x0bcut short\x0bMSH|b\x1c\r\x0b", b"0123456789AB"]

    found = [f for piece in pieces for f in frames.feed(piece)]
    found += frames.feed(b"CDEF\x1c\r\x0bMSH|c\x1c\r")

    assert found[:2] == [b"MSH|a", b"MSH|b"]
    assert isinstance(found[2], Oversize) and found[2].head.startswith(b"0123456789AB")
    assert found[3:] == [b"MSH|c"]
