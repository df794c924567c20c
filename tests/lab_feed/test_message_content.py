"""What the feed makes of a message's content: codes, units, values, times, statuses, escape
sequences and encoding characters; every refusal answered with its reason, and a refused
message records nothing at all."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from engine.services import audit_trail
from engine.services.access_policy import Principal
from lab_feed.receiver import LabFeed
from tests.lab_feed.oru_messages import ALT, BILI_LOCAL, HBSAG, Obx, oru, read_ack

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # the manual clock's start
TAKEN = NOW - timedelta(hours=3)


@pytest.fixture
def patient(enrol_north) -> str:
    return enrol_north("NR-100")["patient_id"]


@pytest.mark.parametrize(
    ("obx", "location", "error", "reason"),
    [
        (Obx("9999-9^Unknown^LN", "1", "U/L"), "OBX^1^3", "103", "'9999-9' (LN) is neither"),
        (Obx("ZZALT^Local ALT^L", "1", "U/L"), "OBX^1^3", "103", "local code table"),
        (Obx(ALT, "420", "mmol/L"), "OBX^1^5", "207", "cannot be converted to U/L"),
        (Obx(ALT, "high", "U/L"), "OBX^1^5", "207", "ALT needs a number, not 'high'"),
        (Obx(ALT, "1e308", "U/L"), "OBX^1^5", "207", "outside the plausible range"),
        (Obx(ALT, "NaN", "U/L"), "OBX^1^5", "207", "finite number"),
        (Obx(ALT, "", "U/L"), "OBX^1^5", "101", "holds no value"),
        (Obx(ALT, ">^1000", "U/L", kind="SN"), "OBX^1^5", "102", "only N or <N"),
        (Obx(ALT, "420", "U/L", kind="ED"), "OBX^1^2", "102", "'ED' is not supported"),
        (Obx(HBSAG, "maybe", kind="ST"), "OBX^1^5", "207", "must be one of positive, negative"),
        (Obx(ALT, "420", "U/L", observed_at="202601"), "OBX^1^14", "102", "at least the day"),
        (Obx(ALT, "420", "U/L", observed_at="20260231"), "OBX^1^14", "102", "not a real date"),
        (Obx(ALT, "420", "U/L", observed_at="20270101"), "OBX^1^5", "207", "future"),
        (Obx(ALT, "420", "U/L", status="D"), "OBX^1^11", "207", "tell the clinic"),
    ],
)
def test_a_result_that_cannot_be_recorded_refuses_the_message_with_its_reason(
    connect, patient, labs_of, obx, location, error, reason
):
    good = Obx(ALT, "420", "U/L")
    ack = read_ack(connect().send(oru("NR-100", (TAKEN, [good]), (TAKEN, [obx]))))

    assert ack.code == "AE"
    assert "nothing recorded" in ack.text
    (where, code, severity, why) = ack.errors[0]
    assert (where, code, severity) == (location.replace("OBX^1", "OBX^2"), error, "E")
    assert reason in why, why
    assert labs_of(patient) == []  # the good OBX of the same message is not recorded either


def test_an_unknown_patient_refuses_the_whole_message_and_is_audited(
    connect, patient, labs_of, uow_factory, feed
):
    message = oru(
        "NR-100",
        (TAKEN, [Obx(ALT, "420", "U/L")]),
        patients=[("NR-UNKNOWN", [(TAKEN, [Obx(ALT, "300", "U/L")])])],
    )

    ack = read_ack(connect().send(message))

    assert ack.code == "AE"
    assert ack.errors == [
        ("OBX^2^3", "204", "E", "OBR 1 OBX 1: PID-3 'NR-UNKNOWN' is not a patient of site north")
    ]
    assert labs_of(patient) == []
    entries = audit_trail.audit_entries(uow_factory(), "test", limit=10)
    (refusal,) = [e for e in entries if e["action"] == "access_refused"]
    assert refusal["actor"] == feed.principal.actor
    assert "NR-UNKNOWN" not in str(refusal)  # the audit line carries no record number


def test_another_sites_patient_is_answered_like_an_unknown_one(connect, enrol_north):
    enrol_north("NR-SOUTH", site="south")

    ack = read_ack(connect().send(oru("NR-SOUTH", (TAKEN, [Obx(ALT, "420", "U/L")]))))

    assert ack.code == "AE"
    assert "'NR-SOUTH' is not a patient of site north" in ack.errors[0][3]


@pytest.mark.parametrize(
    ("obx", "value", "reported"),
    [
        (Obx(ALT, "<20", "U/L"), "<20", "<20 U/L"),  # kept as 20, shown as reported
        (Obx(ALT, "<^20", "U/L", kind="SN"), "<20", "<20 U/L"),
        (Obx(ALT, "^35.5", "U/L", kind="SN"), 35.5, "35.5 U/L"),
        (Obx(ALT, "0.5", "ukat/L"), 30, "0.5 ukat/L"),
        (Obx(ALT, "42", "[IU]/L^international units per litre^UCUM"), 42, "42 IU/L"),
        (Obx(BILI_LOCAL, "1.2", "mg/dL"), 20.5, "1.2 mg/dL"),
        (Obx(BILI_LOCAL, "24", "µmol/L"), 24, "24 umol/L"),
        (Obx(HBSAG, "260385009^Negative^SCT", kind="CWE"), "negative", "negative"),
        (Obx(HBSAG, "Positive", kind="ST"), "positive", "Positive"),
    ],
)
def test_values_and_units_as_laboratories_write_them(
    connect, patient, labs_of, obx, value, reported
):
    ack = read_ack(connect().send(oru("NR-100", (TAKEN, [obx]))))

    assert ack.code == "AA", ack.errors
    (lab,) = labs_of(patient)
    assert (lab["value"], lab["reported"]) == (value, reported)


def test_times_without_an_offset_are_the_sites_and_obx_14_wins_over_obr_7(
    connect, patient, labs_of
):
    message = oru(
        "NR-100",
        (TAKEN, [Obx(ALT, "420", "U/L"), Obx(ALT, "410", "U/L", observed_at="202601050700")]),
    )

    assert read_ack(connect().send(message)).code == "AA"
    assert [lab["taken_at"] for lab in labs_of(patient)] == [
        "2026-01-05T06:00:00+00:00",
        "2026-01-05T07:00:00+00:00",  # north's feed file: timezone UTC
    ]


def test_results_that_are_not_final_are_left_out_with_a_warning(connect, patient, labs_of):
    message = oru(
        "NR-100",
        (TAKEN, [Obx(ALT, "420", "U/L"), Obx(BILI_LOCAL, "30", "umol/L", status="P")]),
    )

    ack = read_ack(connect().send(message))

    assert ack.code == "AA"
    assert ack.errors == [
        ("OBX^2^11", "207", "W", "OBR 1 OBX 2: result status P is not final; not recorded")
    ]
    assert [lab["code"] for lab in labs_of(patient)] == ["ALT"]


def test_escape_sequences_are_decoded(connect, enrol_north, labs_of):
    patient = enrol_north("NR^7|B")["patient_id"]  # a record number holding separators
    message = oru("NR\\S\\7\\F\\B", (TAKEN, [Obx(ALT, "420", "U/L\\T\\x")]))

    ack = read_ack(connect().send(message))

    assert ack.code == "AE"  # the unit U/L&x is refused: the escape was decoded, not split
    assert "'U/L&x' cannot be converted" in ack.errors[0][3]
    assert read_ack(connect().send(message.replace(b"U/L\\T\\x", b"U/L"))).code == "AA"
    assert len(labs_of(patient)) == 1


def test_a_message_with_its_own_encoding_characters_is_read_and_answered_in_them(
    connect, patient, labs_of
):
    standard = oru("NR-100", (TAKEN, [Obx(ALT, "420", "U/L^U/L^UCUM")]), control_id="C|1")
    custom = (
        standard.replace(b"|", b"$")
        .replace(b"^", b"%")
        .replace(b"~", b"*")
        .replace(b"MSH$%*\\&", b"MSH$%*#@")
        .replace(b"\\T\\", b"#T#")
        .replace(b"C$1", b"C#F#1")
    )

    ack = read_ack(connect().send(custom))

    assert ack.raw.startswith("MSH$%*#@$")
    assert (ack.code, ack.control_id) == ("AA", "C$1")
    assert labs_of(patient)[0]["value"] == 420


def test_reasons_holding_separators_are_escaped_in_the_ack(connect, patient):
    ack = read_ack(connect().send(oru("NR-100", (TAKEN, [Obx("A\\F\\B^x^LN", "1", "U/L")]))))

    assert ack.code == "AE"
    assert "'A|B' (LN)" in ack.errors[0][3]


@pytest.mark.parametrize(
    ("change", "error", "reason"),
    [
        ((b"ORU^R01^ORU_R01", b"ADT^A01^ADT_A01"), "200", "only ORU^R01"),
        ((b"|P|2.5.1", b"|P|3.0"), "203", "not 2.x"),
        ((b"|LIS|NORTHLAB|", b"|LIS|ELSEWHERE|"), "204", "'ELSEWHERE' is not a laboratory"),
        (
            (b"|P|2.5.1", b"|P|2.5.1\rPID|1||NR-100\rOBX|1|NM|1742-6^ALT^LN||1|U/L\r\x01\x02|"),
            "100",
            "is not an HL7 segment",
        ),
    ],
)
def test_a_message_the_feed_does_not_take_is_rejected(
    connect, patient, labs_of, change, error, reason
):
    message = oru("NR-100", (TAKEN, [Obx(ALT, "420", "U/L")])).replace(*change)

    ack = read_ack(connect().send(message))

    assert ack.code == "AR"
    assert ack.errors[0][1] == error
    assert reason in ack.text
    assert labs_of(patient) == []


def test_a_message_without_a_control_id_is_rejected(connect, patient):
    message = oru("NR-100", (TAKEN, [Obx(ALT, "420", "U/L")]), control_id="X")
    ack = read_ack(connect().send(message.replace(b"|X|P|", b"||P|")))

    assert (ack.code, ack.errors[0][0], ack.errors[0][1]) == ("AR", "MSH^1^10", "101")


def test_a_feed_for_another_site_may_not_record_north_results(feed, patient, labs_of):
    south = LabFeed(
        feed.uow_factory,
        Principal("u1", "southlab", "lab-interface", "south"),
        feed.sites,
        feed.clock,
    )

    ack = read_ack(south.answer(oru("NR-100", (TAKEN, [Obx(ALT, "420", "U/L")]))))

    assert ack.code == "AR"
    assert "may not record labs for site north" in ack.text
    assert labs_of(patient) == []


def test_mangled_messages_are_always_answered_and_never_as_an_internal_error(feed, patient):
    source = oru("NR-100", (TAKEN, [Obx(ALT, "420", "U/L"), Obx(BILI_LOCAL, "30", "umol/L")]))
    noise = b"|^~\\&\r\n0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ<>.-+ \x00\xff\xc3\xa9"
    chance = random.Random(14)
    codes = set()
    for number in range(150):
        mangled = bytearray(source.replace(b"|MSG", f"|M{number}-".encode()))
        for _ in range(chance.randint(1, 6)):
            at = chance.randrange(len(mangled))
            roll = chance.random()
            if roll < 0.4:
                mangled[at] = chance.choice(noise)
            elif roll < 0.7:
                del mangled[at : at + chance.randint(1, 10)]
            else:
                mangled[at:at] = bytes(chance.choice(noise) for _ in range(chance.randint(1, 5)))

        ack = read_ack(feed.answer(bytes(mangled)))

        assert ack.code in ("AA", "AE", "AR")
        assert "internal error" not in ack.text, bytes(mangled)
        codes.add(ack.code)
    assert codes == {"AA", "AE", "AR"}
