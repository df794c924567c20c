"""Reading an ORU^R01 (v2.5.1) message with python-hl7: its header and its observations.

The encoding characters come from MSH-1 and MSH-2, so `$%*#@` works as well as `|^~\\&`, and
escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\, hex) are decoded in every value this module
gives back. Patient groups may repeat: each OBX belongs to the PID and OBR above it. Segments
other than MSH, PID, OBR and OBX (PV1, ORC, NTE, SPM, Z-segments...) are read past.

A message that is not HL7, not ORU^R01, not version 2.x or lacks what identifies it (MSH-4,
MSH-10) is `Rejected` as a whole (the ACK is AR); problems of single observations are left to
`results`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import hl7
import hl7.util as hl7_util
from hl7.exceptions import ParseException

# python-hl7 logs a value it cannot unescape, with the field's content: keep patient data out
# of the logs (the ACK says what was wrong).
logging.getLogger(hl7_util.__file__).setLevel(logging.CRITICAL + 1)

SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
DEFAULT_ENCODING = "^~\\&"


@dataclass(frozen=True)
class Header:
    """What the ACK needs of the message, and what identifies it."""

    field_separator: str = "|"
    encoding_characters: str = DEFAULT_ENCODING
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.5.1"
    trigger: str = "R01"


class Rejected(Exception):
    """The whole message is refused (AR): `reason`, an HL7 error code (table 0357) and the
    location (`MSH^1^9`)."""

    def __init__(self, reason: str, error: str, location: str = "", header: Header | None = None):
        super().__init__(reason)
        self.reason, self.error, self.location = reason, error, location
        self.header = header or Header()


@dataclass(frozen=True)
class Observation:
    """One OBX with what the PID and OBR above it say."""

    set_id: str
    position: int  # the OBX's rank among the message's OBX segments, 1-based
    order: str  # the set id of the OBR above it
    record_number: str
    code: tuple[str, str]  # (identifier, coding system)
    alternate_code: tuple[str, str]
    value_type: str
    value: tuple[str, ...]  # OBX-5's components, decoded
    units: tuple[str, ...]  # OBX-6 identifier, alternate identifier, text
    status: str
    observed_at: str  # OBX-14, else OBR-7

    @property
    def label(self) -> str:
        """How an answer names the observation: by its OBR's and its own set id."""
        return f"OBR {self.order or '-'} OBX {self.set_id or '-'}"


@dataclass(frozen=True)
class OruMessage:
    header: Header
    digest: str  # SHA-256 of everything but MSH: a resend with a new MSH-7 is the same message
    observations: list[Observation] = field(default_factory=list)


def read_header(text: str) -> Header:
    """The header of a message, or Rejected (with the defaults as the header)."""
    if not text.startswith("MSH") or len(text) < 8:
        raise Rejected("not an HL7 v2 message: it must begin with an MSH segment", "100")
    message = _parse(text.split("\r", 1)[0] + "\r", "the MSH segment", None)
    msh = message.segment("MSH")
    header = Header(
        field_separator=str(msh(1)),
        encoding_characters=str(msh(2)),
        sending_application=_text(message, msh, 3),
        sending_facility=_text(message, msh, 4),
        receiving_application=_text(message, msh, 5),
        receiving_facility=_text(message, msh, 6),
        control_id=_text(message, msh, 10),
        processing_id=_text(message, msh, 11) or "P",
        version=_text(message, msh, 12) or "2.5.1",
        trigger=_text(message, msh, 9, component=2),
    )
    return header


#: OBX segments one message may carry (a panel has tens; a message of thousands is a mistake
#: that would hold the feed's connection while it is judged result by result).
MAX_OBSERVATIONS = 1000


def read_oru(raw: bytes) -> OruMessage:
    """The ORU^R01 message in `raw` (one MLLP frame's content), or Rejected."""
    text = _decode(raw)
    header = read_header(text)
    separators = header.field_separator + header.encoding_characters
    if (
        len(header.encoding_characters) < 4
        or len(set(separators)) != len(separators)
        or any(c.isalnum() or c.isspace() or not c.isprintable() for c in separators)
    ):
        raise Rejected(
            "MSH-1 and MSH-2 must be five distinct punctuation characters",
            "102",
            "MSH^1^2",
            header,
        )
    message = _parse(text, "the message", header)
    msh = message.segment("MSH")
    kind = (_text(message, msh, 9, component=1), header.trigger)
    if kind != ("ORU", "R01"):
        raise Rejected(
            f"only ORU^R01 lab results are accepted, not {'^'.join(kind)!r}",
            "200",
            "MSH^1^9",
            header,
        )
    if not header.version.startswith("2."):
        raise Rejected(f"HL7 version {header.version!r} is not 2.x", "203", "MSH^1^12", header)
    for name, value, position in (
        ("MSH-4 sending facility", header.sending_facility, "MSH^1^4"),
        ("MSH-10 message control id", header.control_id, "MSH^1^10"),
    ):
        if not value.strip():
            raise Rejected(f"{name} is required", "101", position, header)
    if len(header.sending_facility) > 60 or len(header.control_id) > 128:
        raise Rejected("MSH-4 or MSH-10 is too long", "102", "MSH^1^10", header)
    observations: list[Observation] = []
    record_number, order, order_time = "", "", ""
    body = []
    for number, segment in enumerate(message, start=1):
        name = str(segment[0])
        if not SEGMENT_ID.match(name):
            raise Rejected(
                f"segment {number} ({name[:12]!r}) is not an HL7 segment",
                "100",
                name[:3],
                header,
            )
        if number > 1:
            body.append(str(segment))
        if name == "PID":
            record_number = _record_number(message, segment)
            order, order_time = "", ""
        elif name == "OBR":
            order, order_time = _text(message, segment, 1), _text(message, segment, 7)
        elif name == "OBX":
            if len(observations) == MAX_OBSERVATIONS:
                raise Rejected(
                    f"the message carries more than {MAX_OBSERVATIONS} OBX results; send a "
                    "patient's results in several messages",
                    "102",
                    f"OBX^{MAX_OBSERVATIONS + 1}",
                    header,
                )
            if _count(segment, 5) > 1:
                raise Rejected(
                    f"OBX {len(observations) + 1}: OBX-5 repeats ({_text(message, segment, 5)!r} "
                    "and more); a result is one value, send each in its own OBX",
                    "102",
                    f"OBX^{len(observations) + 1}^5",
                    header,
                )
            observations.append(
                _observation(
                    message, segment, len(observations) + 1, record_number, order, order_time
                )
            )
    if not observations:
        raise Rejected("the message carries no OBX result", "101", "OBX", header)
    digest = hashlib.sha256("\r".join(body).encode("utf-8")).hexdigest()
    return OruMessage(header, digest, observations)


def _parse(text: str, what: str, header: Header | None) -> Any:
    try:
        message = hl7.parse(text)
        message.segment("MSH")
    except (ParseException, KeyError, IndexError, ValueError, AssertionError) as problem:
        raise Rejected(f"{what} cannot be read ({problem})", "100", "MSH", header) from None
    return message


def _decode(raw: bytes) -> str:
    """Text with segments ended by CR (files and some senders use LF or CR LF)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # ISO 8859-1, HL7's most common single-byte set
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r \t\x00")


def _observation(
    message: Any, obx: Any, position: int, record_number: str, order: str, order_time: str
) -> Observation:
    return Observation(
        set_id=_text(message, obx, 1),
        position=position,
        order=order,
        record_number=record_number,
        code=(_text(message, obx, 3, component=1), _text(message, obx, 3, component=3)),
        alternate_code=(_text(message, obx, 3, component=4), _text(message, obx, 3, component=6)),
        value_type=_text(message, obx, 2).upper(),
        value=_components(message, obx, 5),
        units=tuple(
            unit
            for unit in (
                _text(message, obx, 6, component=1),
                _text(message, obx, 6, component=4),
                _text(message, obx, 6, component=2),
            )
            if unit
        ),
        status=_text(message, obx, 11).upper(),
        observed_at=_text(message, obx, 14) or order_time,
    )


def _record_number(message: Any, pid: Any) -> str:
    """PID-3's identifier typed MR (medical record number), else its first one."""
    found = []
    for repetition in range(1, _count(pid, 3) + 1):
        identifier = _text(message, pid, 3, repetition=repetition)
        kind = _text(message, pid, 3, repetition=repetition, component=5)
        if identifier:
            found.append((kind.upper() != "MR", identifier))
    return min(found)[1] if found else ""


def _count(segment: Any, position: int) -> int:
    try:
        return len(segment(position))
    except IndexError:
        return 0


def _components(message: Any, segment: Any, position: int) -> tuple[str, ...]:
    """The first repetition's components of a field, decoded (trailing empty ones dropped)."""
    try:
        repetition = segment(position)(1)
    except IndexError:
        return ()
    parts = [repetition] if isinstance(repetition, str) else [str(part) for part in repetition]
    decoded = [message.unescape(part) for part in parts]
    while decoded and not decoded[-1]:
        decoded.pop()
    return tuple(decoded)


def _text(
    message: Any, segment: Any, position: int, *, repetition: int = 1, component: int = 1
) -> str:
    """One component of a field, decoded; empty when absent."""
    if position <= 2 and str(segment[0]) == "MSH":
        return str(segment(position))
    value = _dig(segment, position, repetition, component)
    return message.unescape(value).strip()


def _dig(node: Any, *indexes: int) -> str:
    """python-hl7 nests a field only as deep as its separators go: a plain value is a string
    at any depth below it (as component 1 of repetition 1)."""
    for index in indexes:
        if isinstance(node, str):
            return node if index == 1 else ""
        try:
            node = node(index)
        except IndexError:
            return ""
    return node if isinstance(node, str) else str(node)
