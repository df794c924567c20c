"""The ACK (original mode): MSH, MSA (AA, AE or AR, the control id, a short text) and one ERR per
problem, in the message's own encoding characters, with the text escaped.

ERR carries the location (`OBX^3^5`: the third OBX, field 5), the HL7 error code (table 0357),
the severity (E error, W warning: left out, the rest recorded) and the reason in ERR-8.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import uuid4

from lab_feed.oru import DEFAULT_ENCODING, Header

ERROR_NAMES = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}
MSA_TEXT_LENGTH = 80


@dataclass(frozen=True)
class ErrorLine:
    location: tuple[str, ...]  # segment id, sequence, field
    error: str
    reason: str
    severity: str = "E"


def acknowledgement(
    header: Header,
    code: str,
    text: str,
    errors: list[ErrorLine],
    now: datetime,
    receiver: str = "AIHP",
) -> bytes:
    """The ACK message's bytes (UTF-8), segments ended by CR: in the message's separators when
    they are usable, else the standard ones."""
    f, encoding = _separators(header)
    component = encoding[0]

    def esc(value: str) -> str:
        return _escape(value, f, encoding)

    msh = f.join(
        [
            "MSH",
            encoding,
            "AIHP",
            esc(receiver),
            esc(header.sending_application),
            esc(header.sending_facility),
            now.strftime("%Y%m%d%H%M%S%z"),
            "",
            component.join(["ACK", esc(header.trigger), "ACK"]),
            uuid4().hex[:20],
            esc(header.processing_id),
            esc(header.version),
        ]
    )
    msa = f.join(["MSA", code, esc(header.control_id), esc(text[:MSA_TEXT_LENGTH])])
    segments = [msh, msa]
    for line in errors:
        where = component.join(esc(part) for part in line.location)
        what = component.join([line.error, ERROR_NAMES.get(line.error, ""), "HL70357"])
        segments.append(
            f.join(["ERR", "", where, what, line.severity, "", "", "", esc(line.reason)])
        )
    return ("\r".join(segments) + "\r").encode("utf-8")


def _separators(header: Header) -> tuple[str, str]:
    f, encoding = header.field_separator, header.encoding_characters[:4]
    usable = (
        len(f) == 1
        and len(encoding) == 4
        and len(set(f + encoding)) == 5
        and all(not c.isalnum() and c.isprintable() and not c.isspace() for c in f + encoding)
    )
    return (f, encoding) if usable else ("|", DEFAULT_ENCODING)


def _escape(value: str, field_separator: str, encoding: str) -> str:
    """HL7 escapes for the separators in `value` (the escape character first)."""
    component, repetition, escape = encoding[0], encoding[1], encoding[2]
    subcomponent = encoding[3]
    value = " ".join(value.split("\r")).replace("\n", " ")
    value = value.replace(escape, f"{escape}E{escape}")
    for character, name in (
        (field_separator, "F"),
        (component, "S"),
        (repetition, "R"),
        (subcomponent, "T"),
    ):
        value = value.replace(character, f"{escape}{name}{escape}")
    return value
